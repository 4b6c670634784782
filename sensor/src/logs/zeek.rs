//! The Zeek ASCII log format, written once for every log.
//!
//! A record type describes itself with a [`Schema`] (path, field names, Zeek types) and writes
//! its values through a [`Row`], which knows Zeek's rendering: six-decimal times, `T`/`F`,
//! `-` for unset, `(empty)` for empty strings and containers, and the escaping of odd bytes.

use std::io::{self, Write};
use std::net::IpAddr;

use crate::ts::{Span, Ts};

/// What a log looks like: its `#path`, and its `#fields` with their `#types`.
#[derive(Debug)]
pub struct Schema {
    pub path: &'static str,
    pub fields: &'static [(&'static str, &'static str)],
    pub style: LogStyle,
}

/// How a log file starts and ends (reference §1.5: the bundle mixes Zeek logs, logs of the
/// older Python writers with one `#fields` line, and headerless files).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogStyle {
    /// Zeek's full header block (`#separator` ... `#types`) and a `#close` line.
    Zeek,
    /// One `#fields<TAB>name...` line, no footer.
    FieldsLine,
    /// One fixed header line of the log's own (yaf_flow.log), no footer.
    HeaderLine(&'static str),
    /// No header at all (p0f-k.log).
    Bare,
    /// JSON lines, no header, file named `<path>.json` (eve.json).
    JsonLines,
}

impl Schema {
    /// The file name inside an interval folder.
    pub fn file_name(&self) -> String {
        match self.style {
            LogStyle::JsonLines => format!("{}.json", self.path),
            _ => format!("{}.log", self.path),
        }
    }
}

/// A record that can be written as one row of a Zeek log.
pub trait ZeekRecord {
    fn schema(&self) -> &'static Schema;
    fn write_row(&self, row: &mut Row<'_>);
}

/// How odd bytes in strings are escaped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Utf8Policy {
    /// Valid multi-byte UTF-8 passes through (`LogAscii::enable_utf_8=T`, Zeek's default).
    PassValid,
    /// Every byte >= 0x80 is escaped as `\xNN` (the reference sensor's `enable_utf_8=F`).
    EscapeAll,
}

/// Writes the header the log's style asks for. `open` is Zeek's `#open` stamp.
pub fn write_header(out: &mut impl Write, schema: &Schema, open: &str) -> io::Result<()> {
    match schema.style {
        LogStyle::Zeek => write_zeek_header(out, schema, open),
        LogStyle::FieldsLine => {
            let mut h = String::from("#fields");
            for (name, _) in schema.fields {
                h.push('\t');
                h.push_str(name);
            }
            h.push('\n');
            out.write_all(h.as_bytes())
        }
        LogStyle::HeaderLine(line) => {
            out.write_all(line.as_bytes())?;
            out.write_all(b"\n")
        }
        LogStyle::Bare | LogStyle::JsonLines => Ok(()),
    }
}

/// Zeek's header block: `#separator` ... `#types`.
fn write_zeek_header(out: &mut impl Write, schema: &Schema, open: &str) -> io::Result<()> {
    let mut h = String::with_capacity(512);
    h.push_str("#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n");
    h.push_str("#path\t");
    h.push_str(schema.path);
    h.push_str("\n#open\t");
    h.push_str(open);
    h.push_str("\n#fields");
    for (name, _) in schema.fields {
        h.push('\t');
        h.push_str(name);
    }
    h.push_str("\n#types");
    for (_, ty) in schema.fields {
        h.push('\t');
        h.push_str(ty);
    }
    h.push('\n');
    out.write_all(h.as_bytes())
}

/// Writes the `#close` line (Zeek-style logs only).
pub fn write_footer(out: &mut impl Write, schema: &Schema, close: &str) -> io::Result<()> {
    match schema.style {
        LogStyle::Zeek => writeln!(out, "#close\t{close}"),
        _ => Ok(()),
    }
}

/// Zeek's `#open`/`#close` stamp for a Unix time, in the given zone.
pub fn stamp(secs: i64, tz: &chrono_tz::Tz) -> String {
    use chrono::TimeZone;
    match tz.timestamp_opt(secs, 0) {
        chrono::LocalResult::Single(t) | chrono::LocalResult::Ambiguous(t, _) => {
            t.format("%Y-%m-%d-%H-%M-%S").to_string()
        }
        chrono::LocalResult::None => "1970-01-01-00-00-00".to_string(),
    }
}

/// One row being written. Values must be written in the schema's field order.
pub struct Row<'a> {
    buf: &'a mut Vec<u8>,
    first: bool,
    utf8: Utf8Policy,
}

impl<'a> Row<'a> {
    pub fn new(buf: &'a mut Vec<u8>, utf8: Utf8Policy) -> Self {
        Row {
            buf,
            first: true,
            utf8,
        }
    }

    fn sep(&mut self) {
        if !self.first {
            self.buf.push(b'\t');
        }
        self.first = false;
    }

    fn raw(&mut self, s: &str) {
        self.sep();
        self.buf.extend_from_slice(s.as_bytes());
    }

    /// Ends the row with a newline.
    pub fn finish(self) {
        self.buf.push(b'\n');
    }

    /// Appends bytes as they are, without separator or escaping: for records that render the
    /// whole line themselves (eve.json's JSON objects). The caller guarantees no newline.
    pub fn verbatim(&mut self, bytes: &[u8]) {
        self.first = false;
        self.buf.extend_from_slice(bytes);
    }

    pub fn unset(&mut self) {
        self.raw("-");
    }

    pub fn time(&mut self, t: Ts) {
        self.sep();
        push_fixed6(self.buf, t.0);
    }

    pub fn interval(&mut self, s: Span) {
        self.sep();
        push_fixed6(self.buf, s.0);
    }

    pub fn interval_opt(&mut self, s: Option<Span>) {
        match s {
            Some(s) => self.interval(s),
            None => self.unset(),
        }
    }

    pub fn count(&mut self, n: u64) {
        self.sep();
        push_u64(self.buf, n);
    }

    pub fn count_opt(&mut self, n: Option<u64>) {
        match n {
            Some(n) => self.count(n),
            None => self.unset(),
        }
    }

    pub fn int(&mut self, n: i64) {
        self.sep();
        if n < 0 {
            self.buf.push(b'-');
        }
        push_u64(self.buf, n.unsigned_abs());
    }

    pub fn port(&mut self, p: u16) {
        self.count(p as u64);
    }

    pub fn addr(&mut self, a: IpAddr) {
        self.sep();
        match a {
            // Every conn.log row has two addresses: dotted quads are written by hand, not
            // through `fmt` (which cost a fifth of the writer thread).
            IpAddr::V4(v4) => {
                for (i, octet) in v4.octets().into_iter().enumerate() {
                    if i > 0 {
                        self.buf.push(b'.');
                    }
                    push_u64(self.buf, u64::from(octet));
                }
            }
            // std renders IPv6 compressed and lower-case, IPv4-mapped as ::ffff:a.b.c.d: as
            // Zeek does.
            IpAddr::V6(_) => {
                let _ = write!(self.buf, "{a}");
            }
        }
    }

    pub fn addr_opt(&mut self, a: Option<IpAddr>) {
        match a {
            Some(a) => self.addr(a),
            None => self.unset(),
        }
    }

    pub fn bool(&mut self, b: bool) {
        self.raw(if b { "T" } else { "F" });
    }

    pub fn bool_opt(&mut self, b: Option<bool>) {
        match b {
            Some(b) => self.bool(b),
            None => self.unset(),
        }
    }

    /// An enum value (`tcp`, `udp`, ...): written as is.
    pub fn enum_name(&mut self, name: &str) {
        self.raw(name);
    }

    /// A string value; empty is `(empty)`.
    pub fn string(&mut self, s: &[u8]) {
        self.sep();
        if s.is_empty() {
            self.buf.extend_from_slice(b"(empty)");
        } else {
            escape_into(self.buf, s, false, self.utf8);
        }
    }

    pub fn string_opt(&mut self, s: Option<&[u8]>) {
        match s {
            Some(s) => self.string(s),
            None => self.unset(),
        }
    }

    /// A set or vector of strings: `None` is unset, an empty list `(empty)`.
    pub fn string_list<'s, I>(&mut self, items: Option<I>)
    where
        I: IntoIterator<Item = &'s [u8]>,
    {
        let Some(items) = items else {
            self.unset();
            return;
        };
        self.sep();
        let start = self.buf.len();
        for (i, s) in items.into_iter().enumerate() {
            if i > 0 {
                self.buf.push(b',');
            }
            if s.is_empty() {
                self.buf.extend_from_slice(b"(empty)");
            } else {
                escape_into(self.buf, s, true, self.utf8);
            }
        }
        if self.buf.len() == start {
            self.buf.extend_from_slice(b"(empty)");
        }
    }

    /// A vector of intervals.
    pub fn interval_list(&mut self, items: Option<&[Span]>) {
        let Some(items) = items else {
            self.unset();
            return;
        };
        self.sep();
        if items.is_empty() {
            self.buf.extend_from_slice(b"(empty)");
        }
        for (i, s) in items.iter().enumerate() {
            if i > 0 {
                self.buf.push(b',');
            }
            push_fixed6(self.buf, s.0);
        }
    }
}

/// Decimal digits of `n`, without the formatting machinery (rows are written by the million).
fn push_u64(out: &mut Vec<u8>, mut n: u64) {
    if n < 10 {
        out.push(b'0' + n as u8);
        return;
    }
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// Microseconds as seconds with exactly six decimals (Zeek's `time`/`interval`).
fn push_fixed6(out: &mut Vec<u8>, micros: i64) {
    if micros < 0 {
        out.push(b'-');
    }
    let m = micros.unsigned_abs();
    push_u64(out, m / 1_000_000);
    out.push(b'.');
    let frac = m % 1_000_000;
    let mut d = [b'0'; 6];
    let mut f = frac;
    for slot in d.iter_mut().rev() {
        *slot = b'0' + (f % 10) as u8;
        f /= 10;
    }
    out.extend_from_slice(&d);
}

/// Escapes one string value the way Zeek's ASCII writer does.
pub fn escape_into(out: &mut Vec<u8>, s: &[u8], in_container: bool, utf8: Utf8Policy) {
    // A value that reads like the unset or empty marker gets its first byte escaped.
    if s == b"-" || s == b"(empty)" {
        push_hex_escape(out, s[0]);
        out.extend_from_slice(&s[1..]);
        return;
    }
    let plain = |b: u8| (0x20..=0x7e).contains(&b) && b != b'\\' && !(in_container && b == b',');
    let mut i = 0;
    while i < s.len() {
        // Runs of bytes written as they are go out in one copy.
        let run = s[i..].iter().take_while(|&&b| plain(b)).count();
        if run > 0 {
            out.extend_from_slice(&s[i..i + run]);
            i += run;
            continue;
        }
        let b = s[i];
        if b >= 0x80 && utf8 == Utf8Policy::PassValid {
            let n = utf8_len(&s[i..]);
            if n > 0 {
                out.extend_from_slice(&s[i..i + n]);
                i += n;
                continue;
            }
        }
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b',' if in_container => out.extend_from_slice(b"\\x2c"),
            0x20..=0x7e => out.push(b),
            _ => push_hex_escape(out, b),
        }
        i += 1;
    }
}

/// `\xNN`, lower-case hex.
fn push_hex_escape(out: &mut Vec<u8>, b: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.extend_from_slice(&[
        b'\\',
        b'x',
        HEX[usize::from(b >> 4)],
        HEX[usize::from(b & 15)],
    ]);
}

/// Length of the valid UTF-8 sequence starting at `s[0]` (a byte >= 0x80), or 0.
fn utf8_len(s: &[u8]) -> usize {
    let n = match s[0] {
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => return 0,
    };
    if s.len() < n {
        return 0;
    }
    match std::str::from_utf8(&s[..n]) {
        Ok(_) => n,
        Err(_) => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn esc(s: &[u8], c: bool, u: Utf8Policy) -> String {
        let mut v = Vec::new();
        escape_into(&mut v, s, c, u);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn escapes_like_zeek() {
        assert_eq!(esc(b"a\tb", false, Utf8Policy::PassValid), "a\\x09b");
        assert_eq!(esc(b"a\\b", false, Utf8Policy::PassValid), "a\\\\b");
        assert_eq!(esc(b"-", false, Utf8Policy::PassValid), "\\x2d");
        assert_eq!(esc(b"(empty)", false, Utf8Policy::PassValid), "\\x28empty)");
        assert_eq!(esc(b"a,b", true, Utf8Policy::PassValid), "a\\x2cb");
        assert_eq!(esc(b"a,b", false, Utf8Policy::PassValid), "a,b");
        assert_eq!(esc("é".as_bytes(), false, Utf8Policy::PassValid), "é");
        assert_eq!(
            esc("é".as_bytes(), false, Utf8Policy::EscapeAll),
            "\\xc3\\xa9"
        );
        assert_eq!(esc(b"\xfc/x", false, Utf8Policy::PassValid), "\\xfc/x");
    }

    #[test]
    fn row_renders_values() {
        let mut buf = Vec::new();
        let mut r = Row::new(&mut buf, Utf8Policy::PassValid);
        r.time(Ts(1_000_000_500));
        r.unset();
        r.string(b"");
        r.string_list::<Vec<&[u8]>>(Some(vec![]));
        r.string_list(Some([&b"a"[..], b"b"]));
        r.addr("fe80::217:f2ff:fed7:cf65".parse().unwrap());
        r.bool(true);
        r.finish();
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            "1000.000500\t-\t(empty)\t(empty)\ta,b\tfe80::217:f2ff:fed7:cf65\tT\n"
        );
    }

    #[test]
    fn ipv4_written_by_hand_matches_display() {
        for a in [
            "0.0.0.0",
            "10.0.0.1",
            "192.168.100.255",
            "255.255.255.255",
            "1.22.3.44",
        ] {
            let ip: IpAddr = a.parse().unwrap();
            let mut buf = Vec::new();
            let mut r = Row::new(&mut buf, Utf8Policy::PassValid);
            r.addr(ip);
            assert_eq!(String::from_utf8(buf).unwrap(), ip.to_string());
        }
    }
}

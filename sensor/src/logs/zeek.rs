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

    #[inline]
    fn sep(&mut self) {
        if !self.first {
            self.buf.push(b'\t');
        }
        self.first = false;
    }

    #[inline]
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

    /// The row's buffer, for records that render the whole line themselves straight into it
    /// (p0f-k.log), on the terms of [`Row::verbatim`].
    pub fn verbatim_buf(&mut self) -> &mut Vec<u8> {
        self.first = false;
        self.buf
    }

    #[inline]
    pub fn unset(&mut self) {
        self.raw("-");
    }

    #[inline]
    pub fn time(&mut self, t: Ts) {
        self.sep();
        push_fixed6(self.buf, t.0);
    }

    #[inline]
    pub fn interval(&mut self, s: Span) {
        self.sep();
        push_fixed6(self.buf, s.0);
    }

    #[inline]
    pub fn interval_opt(&mut self, s: Option<Span>) {
        match s {
            Some(s) => self.interval(s),
            None => self.unset(),
        }
    }

    #[inline]
    pub fn count(&mut self, n: u64) {
        self.sep();
        push_u64(self.buf, n);
    }

    #[inline]
    pub fn count_opt(&mut self, n: Option<u64>) {
        match n {
            Some(n) => self.count(n),
            None => self.unset(),
        }
    }

    #[inline]
    pub fn int(&mut self, n: i64) {
        self.sep();
        if n < 0 {
            self.buf.push(b'-');
        }
        push_u64(self.buf, n.unsigned_abs());
    }

    #[inline]
    pub fn port(&mut self, p: u16) {
        self.count(p as u64);
    }

    pub fn addr(&mut self, a: IpAddr) {
        self.sep();
        match a {
            IpAddr::V4(v4) => push_ipv4(self.buf, v4.octets()),
            // std renders IPv6 compressed and lower-case, IPv4-mapped as ::ffff:a.b.c.d: as
            // Zeek does.
            IpAddr::V6(_) => {
                let _ = write!(self.buf, "{a}");
            }
        }
    }

    #[inline]
    pub fn addr_opt(&mut self, a: Option<IpAddr>) {
        match a {
            Some(a) => self.addr(a),
            None => self.unset(),
        }
    }

    #[inline]
    pub fn bool(&mut self, b: bool) {
        self.raw(if b { "T" } else { "F" });
    }

    #[inline]
    pub fn bool_opt(&mut self, b: Option<bool>) {
        match b {
            Some(b) => self.bool(b),
            None => self.unset(),
        }
    }

    /// An enum value (`tcp`, `udp`, ...): written as is.
    #[inline]
    pub fn enum_name(&mut self, name: &str) {
        self.raw(name);
    }

    /// A string value; empty is `(empty)`.
    #[inline]
    pub fn string(&mut self, s: &[u8]) {
        self.sep();
        push_string(self.buf, s, false, self.utf8);
    }

    #[inline]
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
            push_string(self.buf, s, true, self.utf8);
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

/// `"00" "01" ... "99"`: numbers are rendered two digits per division.
const DEC_PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

/// Decimal digits of `n`, without the formatting machinery (rows are written by the million).
#[inline]
pub(crate) fn push_u64(out: &mut Vec<u8>, n: u64) {
    if n < 10 {
        out.push(b'0' + n as u8);
    } else if n < 100 {
        let p = n as usize * 2;
        out.extend_from_slice(&[DEC_PAIRS[p], DEC_PAIRS[p + 1]]);
    } else {
        push_u64_long(out, n);
    }
}

/// [`push_u64`] from three digits on.
///
/// The digits are built right-aligned in sixteen bytes, shifted to the front as one `u128`,
/// appended whole and cut to length: a fixed-size copy compiles to a few moves where a
/// variable-length one calls `memcpy`, and the length falls out of the digit loop. Below
/// 10^8 the arithmetic is on `u32`, cheaper than on `u64`.
#[inline(never)]
fn push_u64_long(out: &mut Vec<u8>, n: u64) {
    if n >= 10_000_000_000_000_000 {
        push_u64_huge(out, n);
        return;
    }
    let mut d = [0u8; 16];
    let mut i = d.len();
    let mut m = if n >= 100_000_000 {
        // The low eight digits, zero-padded, then the rest (below 10^8).
        let lo = (n % 100_000_000) as u32;
        let (hi4, lo4) = ((lo / 10_000) as usize, (lo % 10_000) as usize);
        for (k, p) in [hi4 / 100, hi4 % 100, lo4 / 100, lo4 % 100]
            .into_iter()
            .enumerate()
        {
            d[8 + 2 * k] = DEC_PAIRS[p * 2];
            d[9 + 2 * k] = DEC_PAIRS[p * 2 + 1];
        }
        i = 8;
        (n / 100_000_000) as u32
    } else {
        n as u32
    };
    while m >= 100 {
        let p = (m % 100) as usize * 2;
        m /= 100;
        i -= 2;
        d[i] = DEC_PAIRS[p];
        d[i + 1] = DEC_PAIRS[p + 1];
    }
    if m >= 10 {
        let p = m as usize * 2;
        i -= 2;
        d[i] = DEC_PAIRS[p];
        d[i + 1] = DEC_PAIRS[p + 1];
    } else if m > 0 || i == d.len() {
        i -= 1;
        d[i] = b'0' + m as u8;
    }
    let front = u128::from_le_bytes(d) >> (8 * i);
    let start = out.len();
    out.extend_from_slice(&front.to_le_bytes());
    out.truncate(start + d.len() - i);
}

/// [`push_u64`] from 17 digits on (no count gets there in practice).
#[cold]
fn push_u64_huge(out: &mut Vec<u8>, mut n: u64) {
    let mut d = [0u8; 20];
    let mut i = d.len();
    while n > 0 {
        i -= 1;
        d[i] = b'0' + (n % 10) as u8;
        n /= 10;
    }
    out.extend_from_slice(&d[i..]);
}

/// Microseconds as seconds with exactly six decimals (Zeek's `time`/`interval`).
pub(crate) fn push_fixed6(out: &mut Vec<u8>, micros: i64) {
    if micros < 0 {
        out.push(b'-');
    }
    let m = micros.unsigned_abs();
    push_u64(out, m / 1_000_000);
    push_frac6(out, m % 1_000_000);
}

/// `.` and six digits of `frac` (below a million).
pub(crate) fn push_frac6(out: &mut Vec<u8>, frac: u64) {
    let frac = (frac % 1_000_000) as usize;
    let (a, b, c) = (frac / 10_000 * 2, frac / 100 % 100 * 2, frac % 100 * 2);
    out.extend_from_slice(&[
        b'.',
        DEC_PAIRS[a],
        DEC_PAIRS[a + 1],
        DEC_PAIRS[b],
        DEC_PAIRS[b + 1],
        DEC_PAIRS[c],
        DEC_PAIRS[c + 1],
    ]);
}

/// Each octet's decimal digits (up to three) and their count in the last byte.
const OCTET_TEXT: [[u8; 4]; 256] = {
    let mut t = [[0u8; 4]; 256];
    let mut i = 0;
    while i < 256 {
        let (h, te, o) = ((i / 100) as u8, (i / 10 % 10) as u8, (i % 10) as u8);
        t[i] = if i >= 100 {
            [b'0' + h, b'0' + te, b'0' + o, 3]
        } else if i >= 10 {
            [b'0' + te, b'0' + o, 0, 2]
        } else {
            [b'0' + o, 0, 0, 1]
        };
        i += 1;
    }
    t
};

/// A dotted quad, by hand: every conn.log row has two addresses, and `fmt` cost a fifth of
/// the writer thread.
pub(crate) fn push_ipv4(out: &mut Vec<u8>, octets: [u8; 4]) {
    // Each octet's table entry is copied whole (4 bytes) and the position moves by its
    // length; the slack at the end absorbs the overhang.
    let mut d = [0u8; 20];
    let mut pos = 0;
    for (i, o) in octets.into_iter().enumerate() {
        if i > 0 {
            d[pos] = b'.';
            pos += 1;
        }
        let t = OCTET_TEXT[usize::from(o)];
        d[pos..pos + 4].copy_from_slice(&t);
        pos += usize::from(t[3]);
    }
    let start = out.len();
    out.extend_from_slice(&d);
    out.truncate(start + pos);
}

/// Whether `b` is written as it is (outside a container `,` is too).
#[inline]
fn is_plain(b: u8, in_container: bool) -> bool {
    (0x20..=0x7e).contains(&b) && b != b'\\' && !(in_container && b == b',')
}

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// The high bit of some byte of the result is set when a byte of `x` equals the byte
/// repeated in `rep` (never a false "no": the lowest matching byte is always flagged).
#[inline]
fn has_byte(x: u64, rep: u64) -> u64 {
    let y = x ^ rep;
    y.wrapping_sub(LO) & !y & HI
}

/// Non-zero exactly when some byte of the eight in `x` is not plain (see [`is_plain`]): bytes
/// are checked eight at a time because most values need no escaping at all.
#[inline]
fn chunk_needs_escape(x: u64, in_container: bool) -> u64 {
    // A byte with its high bit set is flagged by `x` itself. Below 0x80, a byte under 0x20
    // wraps to >= 0xe0 when 0x20 is taken away, and only 0x7f reaches 0x80 when one is
    // added. Borrows and carries start only at a flagged byte, so they may flag a plain
    // neighbour of one but never a chunk that is all plain.
    let mut bad =
        x | x.wrapping_sub(0x20 * LO) | x.wrapping_add(LO) | has_byte(x, b'\\' as u64 * LO);
    if in_container {
        bad |= has_byte(x, b',' as u64 * LO);
    }
    bad & HI
}

/// Index of the first byte of `s` from `i` on that is not plain, or `s.len()`.
#[inline]
fn first_special(s: &[u8], mut i: usize, in_container: bool) -> usize {
    let chunk = |at: usize| {
        let mut c = [0u8; 8];
        c.copy_from_slice(&s[at..at + 8]);
        u64::from_le_bytes(c)
    };
    while i + 8 <= s.len() {
        if chunk_needs_escape(chunk(i), in_container) != 0 {
            break;
        }
        i += 8;
    }
    // Fewer than eight bytes left: one overlapping look at the last eight settles them.
    if i + 8 > s.len() && s.len() >= 8 && chunk_needs_escape(chunk(s.len() - 8), in_container) == 0
    {
        return s.len();
    }
    while i < s.len() && is_plain(s[i], in_container) {
        i += 1;
    }
    i
}

/// One string value, escaped the way Zeek's ASCII writer does, `(empty)` when empty.
///
/// Inlined into the [`Row`] methods: most values need no escaping at all and go out in one
/// copy after the scan; the rest take [`escape_from`].
#[inline]
fn push_string(out: &mut Vec<u8>, s: &[u8], in_container: bool, utf8: Utf8Policy) {
    let plain_to = first_special(s, 0, in_container);
    // The markers are plain text too: they are caught here, not in the scan.
    let marker_len = matches!(s.len(), 0 | 1 | 7);
    if plain_to == s.len() && !(marker_len && (s.is_empty() || is_marker(s))) {
        push_bytes(out, s);
    } else if s.is_empty() {
        out.extend_from_slice(b"(empty)");
    } else {
        escape_from(out, s, plain_to, in_container, utf8);
    }
}

/// Appends `s`. Most values are 8 to 16 bytes (uids, MACs, names): those go as two
/// overlapping fixed-size copies, which compile to moves, instead of a `memcpy` call.
#[inline]
fn push_bytes(out: &mut Vec<u8>, s: &[u8]) {
    let n = s.len();
    if (8..=16).contains(&n) {
        let mut head = [0u8; 8];
        head.copy_from_slice(&s[..8]);
        let mut tail = [0u8; 8];
        tail.copy_from_slice(&s[n - 8..]);
        let start = out.len();
        out.extend_from_slice(&head);
        out.truncate(start + n - 8);
        out.extend_from_slice(&tail);
    } else {
        out.extend_from_slice(s);
    }
}

/// A value that reads like the unset or empty marker.
#[inline]
fn is_marker(s: &[u8]) -> bool {
    s == b"-" || s == b"(empty)"
}

/// Escapes one string value the way Zeek's ASCII writer does.
pub fn escape_into(out: &mut Vec<u8>, s: &[u8], in_container: bool, utf8: Utf8Policy) {
    escape_from(
        out,
        s,
        first_special(s, 0, in_container),
        in_container,
        utf8,
    );
}

/// [`escape_into`], `s[..plain_to]` known to be plain.
#[inline(never)]
fn escape_from(out: &mut Vec<u8>, s: &[u8], plain_to: usize, in_container: bool, utf8: Utf8Policy) {
    // A value that reads like the unset or empty marker gets its first byte escaped.
    if is_marker(s) {
        push_hex_escape(out, s[0]);
        out.extend_from_slice(&s[1..]);
        return;
    }
    // Runs of bytes written as they are go out in one copy.
    let mut run = 0;
    let mut i = plain_to;
    while i < s.len() {
        out.extend_from_slice(&s[run..i]);
        let b = s[i];
        let n = if b >= 0x80 && utf8 == Utf8Policy::PassValid {
            utf8_len(&s[i..])
        } else {
            0
        };
        if n > 0 {
            out.extend_from_slice(&s[i..i + n]);
            i += n;
        } else {
            match b {
                b'\\' => out.extend_from_slice(b"\\\\"),
                b',' if in_container => out.extend_from_slice(b"\\x2c"),
                0x20..=0x7e => out.push(b),
                _ => push_hex_escape(out, b),
            }
            i += 1;
        }
        run = i;
        i = first_special(s, i, in_container);
    }
    out.extend_from_slice(&s[run..]);
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

    /// The rules written the plain way, one byte at a time: the fast paths must agree.
    fn reference_value(s: &[u8], in_container: bool, utf8: Utf8Policy) -> Vec<u8> {
        let mut out = Vec::new();
        if s.is_empty() {
            return b"(empty)".to_vec();
        }
        if s == b"-" || s == b"(empty)" {
            out.extend_from_slice(format!("\\x{:02x}", s[0]).as_bytes());
            out.extend_from_slice(&s[1..]);
            return out;
        }
        let mut i = 0;
        while i < s.len() {
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
                _ => out.extend_from_slice(format!("\\x{b:02x}").as_bytes()),
            }
            i += 1;
        }
        out
    }

    fn check_value(s: &[u8]) {
        for c in [false, true] {
            for u in [Utf8Policy::PassValid, Utf8Policy::EscapeAll] {
                let mut v = b"x".to_vec();
                push_string(&mut v, s, c, u);
                assert_eq!(
                    String::from_utf8_lossy(&v[1..]),
                    String::from_utf8_lossy(&reference_value(s, c, u)),
                    "{s:?} container={c} {u:?}"
                );
                if !s.is_empty() {
                    let mut w = Vec::new();
                    escape_into(&mut w, s, c, u);
                    assert_eq!(w, v[1..], "escape_into {s:?}");
                }
            }
        }
    }

    #[test]
    fn fast_escaping_matches_the_byte_rules() {
        check_value(b"");
        check_value(b"-");
        check_value(b"--");
        check_value(b"(empty)");
        check_value(b"(empty)x");
        check_value(b"(empty");
        // Plain runs of every length around the eight-byte chunks, then one byte of each kind
        // at every position of a run.
        for len in 0..40 {
            let run = vec![b'a'; len];
            check_value(&run);
            for special in [
                0x00, 0x09, 0x1f, 0x20, b',', b'-', b'\\', 0x7e, 0x7f, 0x80, 0xc3, 0xff,
            ] {
                for at in 0..len {
                    let mut v = run.clone();
                    v[at] = special;
                    check_value(&v);
                }
            }
        }
        check_value(&vec![b'z'; 5000]);
        let mut long = vec![b'q'; 5000];
        long[4099] = b'\\';
        long[17] = 0x7f;
        check_value(&long);
        // Valid and broken UTF-8, next to chunk boundaries.
        check_value("abcdefgé".as_bytes());
        check_value("abcdefé".as_bytes());
        check_value("€uro€ and a,b".as_bytes());
        check_value(b"abcdefg\xe2\x82");
        check_value(b"\xe2\x82\xac\xe2\x82");
        check_value(b"\xf4\x90\x80\x80 too high");
        check_value(b"\xed\xa0\x80 surrogate");
    }

    #[test]
    fn random_values_escape_like_the_byte_rules() {
        const BYTES: &[u8] = &[
            0x00, 0x0a, 0x1f, 0x20, b',', b'-', b'(', b')', b'\\', b'a', b'Z', 0x7e, 0x7f, 0x80,
            0xbf, 0xc2, 0xc3, 0xa9, 0xe2, 0x82, 0xac, 0xf0, 0x9f, 0xff,
        ];
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 24) as usize;
            let mut y = x;
            let v: Vec<u8> = (0..len)
                .map(|_| {
                    y = y.rotate_left(5).wrapping_mul(0x2545_F491_4F6C_DD1D);
                    // Mostly plain letters, as real values are.
                    if y.is_multiple_of(3) {
                        BYTES[(y >> 8) as usize % BYTES.len()]
                    } else {
                        b'a' + (y >> 16) as u8 % 26
                    }
                })
                .collect();
            check_value(&v);
        }
    }

    #[test]
    fn numbers_render_like_display() {
        let mut cases = vec![u64::MAX, u64::MAX - 1];
        let mut p = 1u64;
        for _ in 0..20 {
            cases.extend([p - 1, p, p + 1, p.saturating_mul(9)]);
            p = p.saturating_mul(10);
        }
        let mut x = 12345u64;
        for _ in 0..2000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            cases.push(x >> (x % 64));
        }
        for n in cases {
            let mut v = b"<".to_vec();
            push_u64(&mut v, n);
            assert_eq!(String::from_utf8(v).unwrap(), format!("<{n}"));
        }
        for (micros, text) in [
            (0, "0.000000"),
            (1, "0.000001"),
            (999_999, "0.999999"),
            (1_000_000, "1.000000"),
            (1_717_401_600_000_006, "1717401600.000006"),
            (-1_500_000, "-1.500000"),
            (-1, "-0.000001"),
            (i64::MIN, "-9223372036854.775808"),
            (i64::MAX, "9223372036854.775807"),
        ] {
            let mut v = Vec::new();
            push_fixed6(&mut v, micros);
            assert_eq!(String::from_utf8(v).unwrap(), text);
        }
        let mut buf = Vec::new();
        let mut r = Row::new(&mut buf, Utf8Policy::PassValid);
        r.int(-1234567);
        r.int(i64::MIN);
        r.count(0);
        r.port(65535);
        r.finish();
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            "-1234567\t-9223372036854775808\t0\t65535\n"
        );
    }

    #[test]
    fn every_octet_in_every_place() {
        for o in 0..=255u8 {
            for place in 0..4 {
                let mut q = [1, 22, 133, 4];
                q[place] = o;
                let mut v = Vec::new();
                push_ipv4(&mut v, q);
                assert_eq!(
                    String::from_utf8(v).unwrap(),
                    std::net::Ipv4Addr::from(q).to_string()
                );
            }
        }
    }
}

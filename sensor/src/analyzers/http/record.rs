//! http.log records and the bookkeeping that decides what goes into them and when they are
//! written: the behaviour of Zeek's `base/protocols/http/main.zeek` (zeek-semantics §4.2).
//!
//! Each connection keeps a table of pending transactions indexed by a request counter and a
//! response counter. A request line opens the next transaction; a status line moves the
//! response counter on unless the previous reply was informational (1xx); headers and
//! message ends land on the transaction their direction's counter points at, and open a new
//! one when that slot was already written. A transaction is written when its final (non-1xx)
//! reply message ends; whatever is pending when the connection ends is written then.

use std::net::IpAddr;

use crate::analyzers::small::SmallBytes;
use crate::analyzers::{Record, RecordSink};
use crate::flow::uid::UID_TEXT_MAX;
use crate::flow::Uid;
use crate::logs::zeek::{LogStyle, Row, Schema, ZeekRecord};
use crate::stats::Stats;
use crate::ts::Ts;

use super::parser::Version;

/// The product's http.log columns: Zeek's `HTTP::Info` without the file columns (the
/// reference sensor does not load them) plus the MACs of both ends (reference §3.6).
pub static HTTP_SCHEMA: Schema = Schema {
    path: "http",
    fields: &[
        ("ts", "time"),
        ("uid", "string"),
        ("id.orig_h", "addr"),
        ("id.orig_p", "port"),
        ("id.resp_h", "addr"),
        ("id.resp_p", "port"),
        ("trans_depth", "count"),
        ("method", "string"),
        ("host", "string"),
        ("uri", "string"),
        ("referrer", "string"),
        ("version", "string"),
        ("user_agent", "string"),
        ("origin", "string"),
        ("request_body_len", "count"),
        ("response_body_len", "count"),
        ("status_code", "count"),
        ("status_msg", "string"),
        ("info_code", "count"),
        ("info_msg", "string"),
        ("tags", "set[enum]"),
        ("username", "string"),
        ("password", "string"),
        ("proxied", "set[string]"),
        ("orig_l2_addr", "string"),
        ("resp_l2_addr", "string"),
    ],
    style: LogStyle::Zeek,
};

/// Zeek's `HTTP::max_pending_requests`: more pending transactions than this are written out.
pub const MAX_PENDING: usize = 100;
/// Bytes of strings the pending transactions of one connection may hold before they are
/// written out like excessive pipelining (Zeek has no such bound; memory must have one).
pub const MAX_PENDING_BYTES: usize = 256 * 1024;
/// Distinct `proxied` entries kept per transaction.
pub const MAX_PROXIED: usize = 16;

/// Zeek's `HTTP::proxy_headers`.
const PROXY_HEADERS: &[&[u8]] = &[
    b"FORWARDED",
    b"X-FORWARDED-FOR",
    b"X-FORWARDED-FROM",
    b"CLIENT-IP",
    b"VIA",
    b"XROXY-CONNECTION",
    b"PROXY-CONNECTION",
];

/// One http.log row.
#[derive(Clone, Debug, Default)]
pub struct HttpRecord {
    pub ts: Ts,
    pub uid: Uid,
    pub orig: (Option<IpAddr>, u16),
    pub resp: (Option<IpAddr>, u16),
    pub trans_depth: u64,
    // Strings inline when short (most are): one allocation per record, not one per column.
    pub method: Option<SmallBytes>,
    pub host: Option<SmallBytes>,
    pub uri: Option<SmallBytes>,
    pub referrer: Option<SmallBytes>,
    /// Version of the reply.
    pub version: Option<Version>,
    pub user_agent: Option<SmallBytes>,
    pub origin: Option<SmallBytes>,
    pub request_body_len: u64,
    pub response_body_len: u64,
    pub status_code: Option<u16>,
    pub status_msg: Option<SmallBytes>,
    pub info_code: Option<u16>,
    pub info_msg: Option<SmallBytes>,
    pub username: Option<SmallBytes>,
    /// `NAME -> value` of proxy headers; `None` until one is seen.
    pub proxied: Option<Vec<Vec<u8>>>,
    pub orig_l2: Option<[u8; 6]>,
    pub resp_l2: Option<[u8; 6]>,
}

impl HttpRecord {
    /// Bytes of string data held.
    fn weight(&self) -> usize {
        let s = |o: &Option<SmallBytes>| o.as_ref().map_or(0, |b| b.len());
        s(&self.method)
            + s(&self.host)
            + s(&self.uri)
            + s(&self.referrer)
            + s(&self.user_agent)
            + s(&self.origin)
            + s(&self.status_msg)
            + s(&self.info_msg)
            + s(&self.username)
            + self
                .proxied
                .as_ref()
                .map_or(0, |p| p.iter().map(Vec::len).sum())
    }
}

/// `aa:bb:cc:dd:ee:ff`, as conn.log writes MACs.
fn mac_text(m: [u8; 6]) -> [u8; 17] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [b':'; 17];
    for (i, b) in m.iter().enumerate() {
        out[i * 3] = HEX[usize::from(b >> 4)];
        out[i * 3 + 1] = HEX[usize::from(b & 0xf)];
    }
    out
}

impl ZeekRecord for HttpRecord {
    fn schema(&self) -> &'static Schema {
        &HTTP_SCHEMA
    }

    fn write_row(&self, row: &mut Row<'_>) {
        row.time(self.ts);
        let mut uid = [0u8; UID_TEXT_MAX];
        let n = self.uid.render_ascii(b'C', &mut uid);
        row.string(&uid[..n]);
        row.addr_opt(self.orig.0);
        row.port(self.orig.1);
        row.addr_opt(self.resp.0);
        row.port(self.resp.1);
        row.count(self.trans_depth);
        row.string_opt(self.method.as_deref());
        row.string_opt(self.host.as_deref());
        row.string_opt(self.uri.as_deref());
        row.string_opt(self.referrer.as_deref());
        let version = self.version.map(Version::text);
        row.string_opt(version.as_ref().map(|v| &v[..]));
        row.string_opt(self.user_agent.as_deref());
        row.string_opt(self.origin.as_deref());
        row.count(self.request_body_len);
        row.count(self.response_body_len);
        row.count_opt(self.status_code.map(u64::from));
        row.string_opt(self.status_msg.as_deref());
        row.count_opt(self.info_code.map(u64::from));
        row.string_opt(self.info_msg.as_deref());
        // Tags come from policy scripts the reference does not load: always an empty set.
        row.string_list(Some(std::iter::empty::<&[u8]>()));
        row.string_opt(self.username.as_deref());
        // Passwords are never recorded.
        row.unset();
        row.string_list(self.proxied.as_ref().map(|p| p.iter().map(Vec::as_slice)));
        let orig_l2 = self.orig_l2.map(mac_text);
        row.string_opt(orig_l2.as_ref().map(|m| &m[..]));
        let resp_l2 = self.resp_l2.map(mac_text);
        row.string_opt(resp_l2.as_ref().map(|m| &m[..]));
    }
}

/// The connection a record belongs to, as known when it is created or written.
#[derive(Clone, Copy, Debug, Default)]
pub struct ConnIds {
    pub uid: Uid,
    pub orig: (Option<IpAddr>, u16),
    pub resp: (Option<IpAddr>, u16),
    pub orig_l2: Option<[u8; 6]>,
    pub resp_l2: Option<[u8; 6]>,
}

/// What record operations need from around them.
pub struct Ctx<'a> {
    pub now: Ts,
    pub ids: &'a ConnIds,
    pub out: &'a mut dyn RecordSink,
    pub stats: &'a Stats,
}

impl Ctx<'_> {
    fn write(&mut self, mut rec: HttpRecord) {
        rec.orig_l2 = self.ids.orig_l2;
        rec.resp_l2 = self.ids.resp_l2;
        Stats::inc(&self.stats.http_records);
        self.out.record(Record::log(rec));
    }
}

/// Pending transactions by request counter, in counter order. Almost always zero or one
/// entry: a vector grown one slot at a time holds them with far less memory per connection
/// than an ordered map's node.
#[derive(Debug, Default)]
struct Pending(Vec<(u64, HttpRecord)>);

impl Pending {
    fn len(&self) -> usize {
        self.0.len()
    }

    fn values(&self) -> impl Iterator<Item = &HttpRecord> {
        self.0.iter().map(|(_, r)| r)
    }

    fn get(&self, key: u64) -> Option<&HttpRecord> {
        let i = self.0.binary_search_by_key(&key, |(k, _)| *k).ok()?;
        Some(&self.0[i].1)
    }

    fn remove(&mut self, key: u64) -> Option<HttpRecord> {
        let i = self.0.binary_search_by_key(&key, |(k, _)| *k).ok()?;
        Some(self.0.remove(i).1)
    }

    fn get_or_insert_with(
        &mut self,
        key: u64,
        make: impl FnOnce() -> HttpRecord,
    ) -> &mut HttpRecord {
        let i = match self.0.binary_search_by_key(&key, |(k, _)| *k) {
            Ok(i) => i,
            Err(i) => {
                if self.0.len() == self.0.capacity() {
                    self.0.reserve_exact(self.0.len().max(1));
                }
                self.0.insert(i, (key, make()));
                i
            }
        };
        &mut self.0[i].1
    }

    /// Everything, in counter order.
    fn take(&mut self) -> Vec<(u64, HttpRecord)> {
        std::mem::take(&mut self.0)
    }
}

/// The pending transactions of one connection.
#[derive(Debug, Default)]
pub struct Session {
    pending: Pending,
    current_request: u64,
    current_response: u64,
    trans_depth: u64,
}

fn is_info(code: Option<u16>) -> bool {
    code.is_some_and(|c| (100..200).contains(&c))
}

impl Session {
    /// The transaction a message of this direction belongs to, opened if needed.
    fn slot(&mut self, ctx: &Ctx<'_>, is_orig: bool) -> &mut HttpRecord {
        let key = if is_orig {
            self.current_request
        } else {
            self.current_response
        };
        let depth = &mut self.trans_depth;
        self.pending.get_or_insert_with(key, || {
            *depth += 1;
            HttpRecord {
                ts: ctx.now,
                uid: ctx.ids.uid,
                orig: ctx.ids.orig,
                resp: ctx.ids.resp,
                trans_depth: *depth,
                ..HttpRecord::default()
            }
        })
    }

    pub fn request(&mut self, ctx: &mut Ctx<'_>, method: &[u8], uri: &[u8]) {
        if self.current_request < self.current_response {
            // More replies than requests so far: line the counters up again.
            self.current_request = self.current_response;
        }
        let heavy = self.pending.len() > 4
            && self.pending.values().map(HttpRecord::weight).sum::<usize>() > MAX_PENDING_BYTES;
        if self.pending.len() > MAX_PENDING || heavy {
            // Excessive pipelining (or one-sided capture): write out what waits.
            if self.current_response == 0 {
                self.current_response += 1;
            }
            while self.current_response < self.current_request {
                if let Some(rec) = self.pending.remove(self.current_response) {
                    Stats::inc(&ctx.stats.http_pending_flushed);
                    ctx.write(rec);
                }
                self.current_response += 1;
            }
        }
        self.current_request += 1;
        let rec = self.slot(ctx, true);
        rec.method = Some(method.into());
        rec.uri = Some(uri.into());
    }

    pub fn reply(&mut self, ctx: &mut Ctx<'_>, version: Version, code: u16, reason: Option<&[u8]>) {
        let advance = match self.pending.get(self.current_response) {
            None => true,
            Some(r) => r.status_code.is_some() && !is_info(r.status_code),
        };
        if advance {
            self.current_response += 1;
        }
        let rec = self.slot(ctx, false);
        let msg = SmallBytes::from(reason.unwrap_or(b"<empty>"));
        rec.status_code = Some(code);
        rec.version = Some(version);
        if is_info(Some(code)) {
            rec.info_code = Some(code);
            rec.info_msg = Some(msg.clone());
        }
        rec.status_msg = Some(msg);
    }

    pub fn header(&mut self, ctx: &mut Ctx<'_>, is_orig: bool, name: &[u8], value: &[u8]) {
        let rec = self.slot(ctx, is_orig);
        if !is_orig {
            return;
        }
        let is = |n: &[u8]| name.eq_ignore_ascii_case(n);
        if is(b"REFERER") {
            rec.referrer = Some(value.into());
        } else if is(b"HOST") {
            rec.host = Some(value.into());
        } else if is(b"ORIGIN") {
            rec.origin = Some(value.into());
        } else if is(b"USER-AGENT") {
            rec.user_agent = Some(value.into());
        } else if PROXY_HEADERS.iter().any(|p| is(p)) {
            let mut entry = name.to_ascii_uppercase();
            entry.extend_from_slice(b" -> ");
            entry.extend_from_slice(value);
            let set = rec.proxied.get_or_insert_with(Vec::new);
            if !set.contains(&entry) && set.len() < MAX_PROXIED {
                set.push(entry);
            }
        } else if is(b"AUTHORIZATION") || is(b"PROXY-AUTHORIZATION") {
            if let Some(user) = basic_auth_user(value) {
                rec.username = Some(user[..].into());
            }
        }
    }

    pub fn message_done(&mut self, ctx: &mut Ctx<'_>, is_orig: bool, body_len: u64) {
        let rec = self.slot(ctx, is_orig);
        if is_orig {
            rec.request_body_len = body_len;
            return;
        }
        rec.response_body_len = body_len;
        // An informational reply keeps the transaction open for the final one.
        if !is_info(rec.status_code) {
            if let Some(rec) = self.pending.remove(self.current_response) {
                ctx.write(rec);
            }
        }
    }

    /// The connection is gone: every pending transaction is written (slot 0 holds only
    /// leftovers from before the first reply and is never written, as in Zeek).
    pub fn finalize(&mut self, ctx: &mut Ctx<'_>) {
        for (key, rec) in self.pending.take() {
            if key != 0 {
                ctx.write(rec);
            }
        }
    }
}

/// The user of `Basic` credentials (the password is dropped at once). Undecodable
/// credentials give `<problem-decoding> (<header value>)`, as Zeek logs them.
pub fn basic_auth_user(value: &[u8]) -> Option<Vec<u8>> {
    if value.len() < 6 || !value[..6].eq_ignore_ascii_case(b"basic ") {
        return None;
    }
    let mut i = 5;
    while i < value.len() && matches!(value[i], b' ' | b'\t') {
        i += 1;
    }
    let decoded = base64_lenient(&value[i..]);
    match decoded.iter().position(|&c| c == b':') {
        Some(colon) => Some(decoded[..colon].to_vec()),
        None => {
            let mut s = b"<problem-decoding> (".to_vec();
            s.extend_from_slice(value);
            s.push(b')');
            Some(s)
        }
    }
}

/// Base64 that skips characters outside the alphabet and stops at padding.
fn base64_lenient(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &c in s {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            _ => continue,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_auth_user_only() {
        assert_eq!(
            basic_auth_user(b"Basic dGVzdDoxMjM0").as_deref(),
            Some(&b"test"[..])
        );
        assert_eq!(
            basic_auth_user(b"basic  dGVzdDoxOjM0").as_deref(),
            Some(&b"test"[..])
        );
        assert_eq!(
            basic_auth_user(b"Basic dGVzdA==").as_deref(),
            Some(&b"<problem-decoding> (Basic dGVzdA==)"[..])
        );
        assert_eq!(basic_auth_user(b"Bearer abc"), None);
        assert_eq!(basic_auth_user(b"Basic"), None);
    }

    #[test]
    fn mac_rendering() {
        assert_eq!(
            &mac_text([0, 0x1b, 0x21, 0xab, 0xcd, 0xef]),
            b"00:1b:21:ab:cd:ef"
        );
    }
}

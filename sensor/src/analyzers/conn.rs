//! conn.log: one row per connection (plus interim rows for long-lived ones).

use std::net::IpAddr;

use crate::config::Prefix;
use crate::flow::uid::UID_TEXT_MAX;
use crate::flow::{ConnSummary, MAX_PARENTS};
use crate::logs::zeek::{LogStyle, Row, Schema, ZeekRecord};

/// The product's conn.log columns: Zeek's `Conn::Info` plus the MACs of both ends.
pub static CONN_SCHEMA: Schema = Schema {
    path: "conn",
    fields: &[
        ("ts", "time"),
        ("uid", "string"),
        ("id.orig_h", "addr"),
        ("id.orig_p", "port"),
        ("id.resp_h", "addr"),
        ("id.resp_p", "port"),
        ("proto", "enum"),
        ("service", "string"),
        ("duration", "interval"),
        ("orig_bytes", "count"),
        ("resp_bytes", "count"),
        ("conn_state", "string"),
        ("local_orig", "bool"),
        ("local_resp", "bool"),
        ("missed_bytes", "count"),
        ("history", "string"),
        ("orig_pkts", "count"),
        ("orig_ip_bytes", "count"),
        ("resp_pkts", "count"),
        ("resp_ip_bytes", "count"),
        ("tunnel_parents", "set[string]"),
        ("orig_l2_addr", "string"),
        ("resp_l2_addr", "string"),
    ],
    style: LogStyle::Zeek,
};

/// A conn.log row.
#[derive(Clone, Debug)]
pub struct ConnRecord {
    pub summary: ConnSummary,
    pub local_orig: Option<bool>,
    pub local_resp: Option<bool>,
}

impl ConnRecord {
    /// `local_nets` empty leaves the local columns unset, as the product specifies.
    pub fn new(summary: ConnSummary, local_nets: &[Prefix]) -> ConnRecord {
        let local = |ip: &IpAddr| {
            (!local_nets.is_empty()).then(|| local_nets.iter().any(|p| p.contains(ip)))
        };
        ConnRecord {
            local_orig: local(&summary.orig_h),
            local_resp: local(&summary.resp_h),
            summary,
        }
    }
}

/// `aa:bb:cc:dd:ee:ff`, lower case, without allocating.
fn mac_text(m: [u8; 6]) -> [u8; 17] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [b':'; 17];
    for (i, b) in m.iter().enumerate() {
        out[i * 3] = HEX[(b >> 4) as usize];
        out[i * 3 + 1] = HEX[(b & 0xf) as usize];
    }
    out
}

impl ZeekRecord for ConnRecord {
    fn schema(&self) -> &'static Schema {
        &CONN_SCHEMA
    }

    fn write_row(&self, row: &mut Row<'_>) {
        let s = &self.summary;
        row.time(s.ts);
        let mut uid = [0u8; UID_TEXT_MAX];
        let n = s.uid.render_ascii(b'C', &mut uid);
        row.string(&uid[..n]);
        row.addr(s.orig_h);
        row.port(s.orig_p);
        row.addr(s.resp_h);
        row.port(s.resp_p);
        row.enum_name(s.transport.name());
        // One string column holding the names comma-joined (Zeek's ordered set rendering).
        let mut services = [0u8; 64];
        let mut n = 0;
        for name in s.services.iter().flatten() {
            let extra = usize::from(n > 0);
            if n + extra + name.len() > services.len() {
                break;
            }
            if extra == 1 {
                services[n] = b',';
            }
            services[n + extra..n + extra + name.len()].copy_from_slice(name.as_bytes());
            n += extra + name.len();
        }
        if n == 0 {
            row.unset();
        } else {
            row.string(&services[..n]);
        }
        // Zeek sets duration only when positive, and the byte counts only with a duration.
        if s.duration.is_positive() {
            row.interval(s.duration);
            row.count(s.orig_bytes);
            row.count(s.resp_bytes);
        } else {
            row.unset();
            row.unset();
            row.unset();
        }
        row.string(s.conn_state.as_bytes());
        row.bool_opt(self.local_orig);
        row.bool_opt(self.local_resp);
        row.count(s.missed_bytes);
        let h = s.history.as_bytes();
        if h.is_empty() {
            row.unset();
        } else {
            row.string(h);
        }
        row.count(s.orig_pkts);
        row.count(s.orig_ip_bytes);
        row.count(s.resp_pkts);
        row.count(s.resp_ip_bytes);
        let mut parents = [([0u8; UID_TEXT_MAX], 0usize); MAX_PARENTS];
        let mut count = 0;
        for u in s.tunnel_parents.iter().flatten() {
            let (buf, len) = &mut parents[count];
            *len = u.render_ascii(b'C', buf);
            count += 1;
        }
        if count == 0 {
            row.unset();
        } else {
            row.string_list(Some(parents[..count].iter().map(|(b, l)| &b[..*l])));
        }
        match s.orig_l2 {
            Some(m) => row.string(&mac_text(m)),
            None => row.unset(),
        }
        match s.resp_l2 {
            Some(m) => row.string(&mac_text(m)),
            None => row.unset(),
        }
    }
}

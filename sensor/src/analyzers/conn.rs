//! conn.log: one row per connection (plus interim rows for long-lived ones).

use std::net::IpAddr;

use crate::config::Prefix;
use crate::flow::{ConnSummary, MAX_PARENTS};
use crate::logs::zeek::{Row, Schema, ZeekRecord};

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

fn mac_text(m: [u8; 6]) -> String {
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    )
}

impl ZeekRecord for ConnRecord {
    fn schema(&self) -> &'static Schema {
        &CONN_SCHEMA
    }

    fn write_row(&self, row: &mut Row<'_>) {
        let s = &self.summary;
        row.time(s.ts);
        row.string(s.uid.to_string().as_bytes());
        row.addr(s.orig_h);
        row.port(s.orig_p);
        row.addr(s.resp_h);
        row.port(s.resp_p);
        row.enum_name(s.transport.name());
        let services: Vec<&str> = s.services.iter().flatten().copied().collect();
        if services.is_empty() {
            row.unset();
        } else {
            row.string(services.join(",").as_bytes());
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
        let parents: Vec<String> = s
            .tunnel_parents
            .iter()
            .flatten()
            .map(|u| u.to_string())
            .collect();
        debug_assert!(parents.len() <= MAX_PARENTS);
        if parents.is_empty() {
            row.unset();
        } else {
            row.string_list(Some(parents.iter().map(|p| p.as_bytes())));
        }
        match s.orig_l2 {
            Some(m) => row.string(mac_text(m).as_bytes()),
            None => row.unset(),
        }
        match s.resp_l2 {
            Some(m) => row.string(mac_text(m).as_bytes()),
            None => row.unset(),
        }
    }
}

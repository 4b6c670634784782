//! eve.json alert records: one JSON object per line, keys in Suricata's order.

use std::fmt::Write as _;
use std::net::IpAddr;

use crate::logs::zeek::{LogStyle, Row, Schema, ZeekRecord};
use crate::ts::Ts;

use super::rule::Rule;
use super::vars::Classtype;

pub static EVE_SCHEMA: Schema = Schema {
    path: "eve",
    fields: &[],
    style: LogStyle::JsonLines,
};

/// One rendered alert line (without the newline).
#[derive(Debug)]
pub struct EveAlert(pub String);

impl ZeekRecord for EveAlert {
    fn schema(&self) -> &'static Schema {
        &EVE_SCHEMA
    }
    fn write_row(&self, row: &mut Row<'_>) {
        row.verbatim(self.0.as_bytes());
    }
}

/// A JSON string literal.
pub fn jstr(out: &mut String, s: &str) {
    // serde_json's escaping is the reference; strings never fail to serialize.
    out.push_str(&serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into()));
}

/// Bytes as a JSON string (invalid UTF-8 replaced).
pub fn jbytes(out: &mut String, b: &[u8]) {
    jstr(out, &String::from_utf8_lossy(b));
}

/// `2023-09-18T06:13:41.532140+0000`: packet time in the host's zone.
pub fn timestamp(out: &mut String, ts: Ts) {
    use chrono::TimeZone;
    let secs = ts.0.div_euclid(1_000_000);
    let micros = ts.0.rem_euclid(1_000_000) as u32;
    match chrono::Local.timestamp_opt(secs, micros * 1000) {
        chrono::LocalResult::Single(t) | chrono::LocalResult::Ambiguous(t, _) => {
            let _ = write!(out, "{}", t.format("%Y-%m-%dT%H:%M:%S%.6f%z"));
        }
        chrono::LocalResult::None => out.push_str("1970-01-01T00:00:00.000000+0000"),
    }
}

/// The rule's part of the `alert` object, rendered once at load:
/// `"gid":..,"signature_id":..,"rev":..,"signature":..,"category":..,"severity":..,"metadata":{..}`.
pub fn rule_json(r: &Rule, classes: &std::collections::HashMap<String, Classtype>) -> String {
    let mut s = String::with_capacity(256);
    let _ = write!(
        s,
        "\"gid\":{},\"signature_id\":{},\"rev\":{},\"signature\":",
        r.gid, r.sid, r.rev
    );
    jstr(&mut s, &r.msg);
    let (category, class_prio) = match &r.classtype {
        None => (String::new(), None),
        Some(c) => match classes.get(c) {
            Some(ct) => (ct.description.clone(), Some(ct.priority)),
            None => ("Unknown Classtype".to_string(), Some(3)),
        },
    };
    s.push_str(",\"category\":");
    jstr(&mut s, &category);
    let sev = r.priority.or(class_prio).unwrap_or(3);
    let _ = write!(s, ",\"severity\":{sev}");
    if !r.metadata.is_empty() {
        // Keys sorted case-insensitively, values in rule order.
        let mut keys: Vec<&str> = Vec::new();
        for (k, _) in &r.metadata {
            if !keys.contains(&k.as_str()) {
                keys.push(k);
            }
        }
        keys.sort_by_key(|k| k.to_ascii_lowercase());
        s.push_str(",\"metadata\":{");
        for (i, k) in keys.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            jstr(&mut s, k);
            s.push_str(":[");
            let mut first = true;
            for (kk, v) in &r.metadata {
                if kk == k {
                    if !first {
                        s.push(',');
                    }
                    first = false;
                    jstr(&mut s, v);
                }
            }
            s.push(']');
        }
        s.push('}');
    }
    s
}

/// IANA protocol keyword as EVE writes it.
pub fn proto_name(p: u8) -> String {
    match p {
        1 => "ICMP".into(),
        2 => "IGMP".into(),
        6 => "TCP".into(),
        17 => "UDP".into(),
        47 => "GRE".into(),
        50 => "ESP".into(),
        58 => "IPv6-ICMP".into(),
        132 => "SCTP".into(),
        n => n.to_string(),
    }
}

/// Everything about the packet and flow that an alert line shows.
pub struct AlertCtx<'a> {
    pub ts: Ts,
    pub flow_id: u64,
    pub in_iface: Option<&'a str>,
    pub pcap_cnt: Option<u64>,
    pub vlan: Option<u16>,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub sport: u16,
    pub dport: u16,
    pub proto: u8,
    pub icmp: Option<(u8, u8)>,
    pub tx_id: Option<u64>,
    pub app_proto: Option<&'static str>,
    pub to_server: bool,
    /// Pre-rendered `"http":{...}` / `"dns":{...}` / `"tls":{...}` member.
    pub app_obj: Option<String>,
    pub flow_pkts: [u64; 2],
    pub flow_bytes: [u64; 2],
    pub flow_start: Ts,
    /// Client and server endpoints of the flow.
    pub client: (IpAddr, u16),
    pub server: (IpAddr, u16),
}

pub fn render(c: &AlertCtx<'_>, rule_part: &str, action: &str) -> String {
    let mut s = String::with_capacity(512 + rule_part.len());
    s.push_str("{\"timestamp\":\"");
    timestamp(&mut s, c.ts);
    let _ = write!(s, "\",\"flow_id\":{}", c.flow_id);
    if let Some(i) = c.in_iface {
        s.push_str(",\"in_iface\":");
        jstr(&mut s, i);
    }
    if let Some(n) = c.pcap_cnt {
        let _ = write!(s, ",\"pcap_cnt\":{n}");
    }
    s.push_str(",\"event_type\":\"alert\"");
    if let Some(v) = c.vlan {
        let _ = write!(s, ",\"vlan\":[{v}]");
    }
    let ports = matches!(c.proto, 6 | 17 | 132);
    let _ = write!(s, ",\"src_ip\":\"{}\"", c.src);
    if ports {
        let _ = write!(s, ",\"src_port\":{}", c.sport);
    }
    let _ = write!(s, ",\"dest_ip\":\"{}\"", c.dst);
    if ports {
        let _ = write!(s, ",\"dest_port\":{}", c.dport);
    }
    let _ = write!(
        s,
        ",\"proto\":\"{}\",\"ip_v\":{}",
        proto_name(c.proto),
        if c.src.is_ipv4() { 4 } else { 6 }
    );
    if let Some((t, code)) = c.icmp {
        let _ = write!(s, ",\"icmp_type\":{t},\"icmp_code\":{code}");
    }
    s.push_str(",\"pkt_src\":\"wire/pcap\"");
    if let Some(t) = c.tx_id {
        let _ = write!(s, ",\"tx_id\":{t}");
    }
    let _ = write!(
        s,
        ",\"alert\":{{\"action\":\"{}\",{rule_part}}}",
        if action == "alert" || action == "pass" {
            "allowed"
        } else {
            "blocked"
        }
    );
    if let Some(o) = &c.app_obj {
        s.push(',');
        s.push_str(o);
    }
    if let Some(a) = c.app_proto {
        let _ = write!(s, ",\"app_proto\":\"{a}\"");
    }
    let _ = write!(
        s,
        ",\"direction\":\"{}\"",
        if c.to_server {
            "to_server"
        } else {
            "to_client"
        }
    );
    let _ = write!(
        s,
        ",\"flow\":{{\"pkts_toserver\":{},\"pkts_toclient\":{},\"bytes_toserver\":{},\"bytes_toclient\":{},\"start\":\"",
        c.flow_pkts[0], c.flow_pkts[1], c.flow_bytes[0], c.flow_bytes[1]
    );
    timestamp(&mut s, c.flow_start);
    let _ = write!(
        s,
        "\",\"src_ip\":\"{}\",\"dest_ip\":\"{}\"",
        c.client.0, c.server.0
    );
    if ports {
        let _ = write!(
            s,
            ",\"src_port\":{},\"dest_port\":{}",
            c.client.1, c.server.1
        );
    }
    s.push_str("}}");
    s
}

#[cfg(test)]
mod tests {
    use super::super::parse::{parse_rule, Names};
    use super::super::vars::{parse_classification, Vars};
    use super::*;

    #[test]
    fn rule_part_and_line() {
        let r = parse_rule(
            r#"alert tcp any any -> any any (msg:"ET \"x\""; content:"a"; classtype:trojan-activity; sid:5; rev:2; metadata:updated_at 2023_04_18, created_at 2023_04_17, Signature_severity Major;)"#,
            &Vars::default(),
            &mut Names::default(),
        )
        .unwrap();
        let (classes, _) = parse_classification(
            "config classification: trojan-activity,A Network Trojan was detected,1\n",
        );
        let part = rule_json(&r, &classes);
        assert_eq!(
            part,
            r#""gid":1,"signature_id":5,"rev":2,"signature":"ET \"x\"","category":"A Network Trojan was detected","severity":1,"metadata":{"created_at":["2023_04_17"],"Signature_severity":["Major"],"updated_at":["2023_04_18"]}"#
        );
        let c = AlertCtx {
            ts: Ts(1_695_017_621_532_140),
            flow_id: 7,
            in_iface: None,
            pcap_cnt: Some(3),
            vlan: None,
            src: "10.0.0.2".parse().unwrap(),
            dst: "10.0.0.1".parse().unwrap(),
            sport: 80,
            dport: 1234,
            proto: 6,
            icmp: None,
            tx_id: None,
            app_proto: Some("http"),
            to_server: false,
            app_obj: None,
            flow_pkts: [2, 1],
            flow_bytes: [100, 60],
            flow_start: Ts(1_695_017_621_000_000),
            client: ("10.0.0.1".parse().unwrap(), 1234),
            server: ("10.0.0.2".parse().unwrap(), 80),
        };
        let line = render(&c, &part, "alert");
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["alert"]["signature_id"], 5);
        assert_eq!(v["alert"]["action"], "allowed");
        assert_eq!(v["src_port"], 80);
        assert_eq!(v["flow"]["src_port"], 1234);
        assert_eq!(v["direction"], "to_client");
        let ts = v["timestamp"].as_str().unwrap();
        assert!(ts.starts_with("2023-09-18T") && ts.len() == 31, "{ts}");
    }
}

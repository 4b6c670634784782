//! Flow-table tests on hand-built packets: state machines, timers, eviction, interim rows.

use std::net::IpAddr;
use std::sync::Arc;

use super::*;
use crate::decode::{
    tcp_flags as F, Decoded, IcmpMessage, IpLayer, TcpSegment, Transport, UdpDatagram,
};

static ZEROS: [u8; 2048] = [0; 2048];

const A: &str = "10.0.0.1";
const B: &str = "10.0.0.2";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn layer(
    src: &str,
    dst: &str,
    proto: u8,
    ip_len: u32,
    transport: Transport<'static>,
) -> IpLayer<'static> {
    IpLayer {
        src: ip(src),
        dst: ip(dst),
        proto,
        ip_len,
        ttl: 64,
        dont_fragment: false,
        ip_id: 0,
        header_len: 20,
        reassembled: false,
        header: &[],
        transport,
        encap: None,
    }
}

#[allow(clippy::too_many_arguments)]
fn tcp(
    t: i64,
    src: &str,
    sp: u16,
    dst: &str,
    dp: u16,
    flags: u8,
    seq: u32,
    ack: u32,
    len: u32,
) -> Decoded<'static> {
    let seg = TcpSegment {
        src_port: sp,
        dst_port: dp,
        seq,
        ack,
        flags,
        window: 1000,
        options: &[],
        header: &[],
        payload_len: len,
        payload: &ZEROS[..len as usize],
        checksum_ok: true,
    };
    let mut d = Decoded::new(Ts(t));
    d.push_layer(layer(src, dst, 6, 40 + len, Transport::Tcp(seg)));
    d
}

fn udp(t: i64, src: &str, sp: u16, dst: &str, dp: u16, len: u32) -> Decoded<'static> {
    let u = UdpDatagram {
        src_port: sp,
        dst_port: dp,
        payload_len: len,
        payload: &[],
        checksum_ok: true,
    };
    let mut d = Decoded::new(Ts(t));
    d.push_layer(layer(src, dst, 17, 28 + len, Transport::Udp(u)));
    d
}

fn table(max: usize) -> (FlowTable, Vec<ConnSummary>) {
    let cfg = FlowConfig {
        max_flows: max,
        ..FlowConfig::default()
    };
    (
        FlowTable::new(cfg, Some(7), Arc::new(Stats::default())),
        Vec::new(),
    )
}

const S: i64 = 1_000_000;

#[test]
fn normal_close_is_sf_with_zeek_history_and_sizes() {
    let (mut t, mut rows) = table(16);
    t.process(
        &tcp(0, A, 40000, B, 80, F::SYN, 100, 0, 0),
        &mut |r: ConnSummary| rows.push(r),
    );
    t.process(
        &tcp(S / 10, B, 80, A, 40000, F::SYN | F::ACK, 500, 101, 0),
        &mut |r: ConnSummary| rows.push(r),
    );
    t.process(
        &tcp(2 * S / 10, A, 40000, B, 80, F::ACK, 101, 501, 0),
        &mut |r: ConnSummary| rows.push(r),
    );
    t.process(
        &tcp(3 * S / 10, A, 40000, B, 80, F::ACK | F::PSH, 101, 501, 50),
        &mut |r: ConnSummary| rows.push(r),
    );
    t.process(
        &tcp(35 * S / 100, B, 80, A, 40000, F::ACK, 501, 151, 0),
        &mut |r: ConnSummary| rows.push(r),
    );
    t.process(
        &tcp(4 * S / 10, B, 80, A, 40000, F::ACK | F::PSH, 501, 151, 200),
        &mut |r: ConnSummary| rows.push(r),
    );
    t.process(
        &tcp(5 * S / 10, A, 40000, B, 80, F::ACK | F::FIN, 151, 701, 0),
        &mut |r: ConnSummary| rows.push(r),
    );
    t.process(
        &tcp(6 * S / 10, B, 80, A, 40000, F::ACK | F::FIN, 701, 152, 0),
        &mut |r: ConnSummary| rows.push(r),
    );
    t.process(
        &tcp(7 * S / 10, A, 40000, B, 80, F::ACK, 152, 702, 0),
        &mut |r: ConnSummary| rows.push(r),
    );
    t.flush_all(&mut |r: ConnSummary| rows.push(r));
    assert_eq!(rows.len(), 1);
    let r = &rows[0];
    assert_eq!(r.history.as_bytes(), b"ShADadFf");
    assert_eq!(r.conn_state, "SF");
    assert_eq!((r.orig_bytes, r.resp_bytes), (50, 200));
    assert_eq!((r.orig_pkts, r.resp_pkts), (5, 4));
    assert_eq!(r.orig_p, 40000);
    // The last ACK after both FINs does not extend the duration.
    assert_eq!(r.duration, Span(6 * S / 10));
}

#[test]
fn rejected_syn_is_rej() {
    let (mut t, mut rows) = table(16);
    t.process(
        &tcp(0, A, 40000, B, 81, F::SYN, 100, 0, 0),
        &mut |r: ConnSummary| rows.push(r),
    );
    t.process(
        &tcp(1000, B, 81, A, 40000, F::RST | F::ACK, 0, 101, 0),
        &mut |r: ConnSummary| rows.push(r),
    );
    t.flush_all(&mut |r: ConnSummary| rows.push(r));
    assert_eq!(rows[0].conn_state, "REJ");
    assert_eq!(rows[0].history.as_bytes(), b"Sr");
}

#[test]
fn unanswered_syn_expires_as_s0_after_attempt_delay() {
    let (mut t, mut rows) = table(16);
    t.process(
        &tcp(0, A, 40000, B, 502, F::SYN, 100, 0, 0),
        &mut |r: ConnSummary| rows.push(r),
    );
    t.process(
        &tcp(3 * S, A, 40000, B, 502, F::SYN, 100, 0, 0),
        &mut |r: ConnSummary| rows.push(r),
    );
    t.advance(Ts(6 * S), &mut |r: ConnSummary| rows.push(r));
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].conn_state, "S0");
    assert_eq!(rows[0].history.as_bytes(), b"S");
    assert_eq!(rows[0].orig_pkts, 2);
}

#[test]
fn midstream_server_first_packet_is_flipped() {
    let (mut t, mut rows) = table(16);
    t.process(
        &tcp(0, B, 80, A, 40000, F::ACK, 500, 100, 10),
        &mut |r: ConnSummary| rows.push(r),
    );
    t.flush_all(&mut |r: ConnSummary| rows.push(r));
    assert_eq!(rows[0].orig_p, 40000);
    assert_eq!(rows[0].resp_p, 80);
    assert_eq!(rows[0].history.as_bytes(), b"^d");
}

#[test]
fn udp_request_reply_is_sf_and_idle_timeout_ends_it() {
    let (mut t, mut rows) = table(16);
    t.process(&udp(0, A, 5000, B, 161, 30), &mut |r: ConnSummary| {
        rows.push(r)
    });
    t.process(&udp(S / 100, B, 161, A, 5000, 90), &mut |r: ConnSummary| {
        rows.push(r)
    });
    t.advance(Ts(59 * S), &mut |r: ConnSummary| rows.push(r));
    assert!(rows.is_empty());
    t.advance(Ts(61 * S), &mut |r: ConnSummary| rows.push(r));
    assert_eq!(rows.len(), 1);
    let r = &rows[0];
    assert_eq!((r.conn_state, r.history.as_bytes()), ("SF", &b"Dd"[..]));
    assert_eq!(
        (r.orig_bytes, r.resp_bytes, r.orig_ip_bytes, r.resp_ip_bytes),
        (30, 90, 58, 118)
    );
}

#[test]
fn icmp_echo_pairs_into_one_connection() {
    let (mut t, mut rows) = table(16);
    for (i, (src, dst, ty)) in [(A, B, 8u8), (B, A, 0u8)].into_iter().enumerate() {
        let m = IcmpMessage {
            v6: false,
            icmp_type: ty,
            code: 0,
            payload_len: 56,
            payload: &[],
            header: &[],
            checksum_ok: true,
        };
        let mut d = Decoded::new(Ts(i as i64 * 1000));
        d.push_layer(layer(src, dst, 1, 84, Transport::Icmp(m)));
        t.process(&d, &mut |r: ConnSummary| rows.push(r));
    }
    t.flush_all(&mut |r: ConnSummary| rows.push(r));
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].orig_p, rows[0].resp_p, rows[0].conn_state),
        (8, 0, "OTH")
    );
    assert_eq!((rows[0].orig_pkts, rows[0].resp_pkts), (1, 1));
}

#[test]
fn full_table_evicts_the_longest_idle_and_writes_its_row() {
    let stats = Arc::new(Stats::default());
    let cfg = FlowConfig {
        max_flows: 2,
        ..FlowConfig::default()
    };
    let mut t = FlowTable::new(cfg, Some(1), stats.clone());
    let mut rows = Vec::new();
    t.process(&udp(0, A, 1, B, 53, 1), &mut |r: ConnSummary| rows.push(r));
    t.process(&udp(10, A, 2, B, 53, 1), &mut |r: ConnSummary| rows.push(r));
    t.process(&udp(20, A, 1, B, 53, 1), &mut |r: ConnSummary| rows.push(r)); // refreshes port 1
    t.process(&udp(30, A, 3, B, 53, 1), &mut |r: ConnSummary| rows.push(r)); // evicts port 2
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].orig_p, 2);
    assert_eq!(rows[0].reason, RowReason::Evicted);
    assert_eq!(t.len(), 2);
    assert_eq!(stats.snapshot().flows_evicted, 1);
    for p in 10..10_000u16 {
        t.process(
            &udp(40 + p as i64, A, p, B, 53, 1),
            &mut |r: ConnSummary| rows.push(r),
        );
    }
    assert_eq!(t.len(), 2);
}

#[test]
fn interim_rows_carry_deltas_and_sum_to_the_total() {
    let (mut t, mut rows) = table(16);
    for i in 0..30 {
        t.process(
            &udp(i * 5 * S, A, 5000, B, 502, 10),
            &mut |r: ConnSummary| rows.push(r),
        );
        if i == 14 {
            t.interim_rows(Ts(70 * S), Span::from_secs(60), &mut |r: ConnSummary| {
                rows.push(r)
            });
        }
    }
    t.flush_all(&mut |r: ConnSummary| rows.push(r));
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].reason, RowReason::Interim);
    assert_eq!(rows[0].uid, rows[1].uid);
    assert_eq!(rows[0].orig_pkts + rows[1].orig_pkts, 30);
    assert_eq!(rows[0].orig_bytes + rows[1].orig_bytes, 300);
    assert_eq!(rows[1].duration, Span(145 * S));
}

#[test]
fn rstos0_matches_zeeks_regex() {
    assert!(rstos0_history(b"SR"));
    assert!(rstos0_history(b"SaR"));
    assert!(rstos0_history(b"^SR"));
    assert!(!rstos0_history(b"SaFR"));
    assert!(!rstos0_history(b"R"));
}

#[test]
fn dns_port_udp_ends_after_ten_quiet_seconds() {
    let (mut t, mut rows) = table(16);
    t.process(&udp(0, A, 5000, B, 53, 30), &mut |r: ConnSummary| {
        rows.push(r)
    });
    t.advance(Ts(11 * S), &mut |r: ConnSummary| rows.push(r));
    assert_eq!(rows.len(), 1);
}

#[test]
fn a_table_entry_stays_small() {
    // 65 536 entries must fit the 64 MiB budget with room for everything else.
    assert!(
        FlowTable::entry_size() <= 640,
        "{}",
        FlowTable::entry_size()
    );
}

/// A UDP datagram carrying `payload`.
fn udp_with(
    t: i64,
    src: &str,
    sp: u16,
    dst: &str,
    dp: u16,
    payload: &'static [u8],
) -> Decoded<'static> {
    let u = UdpDatagram {
        src_port: sp,
        dst_port: dp,
        payload_len: payload.len() as u32,
        payload,
        checksum_ok: true,
    };
    let mut d = Decoded::new(Ts(t));
    d.push_layer(layer(
        src,
        dst,
        17,
        28 + payload.len() as u32,
        Transport::Udp(u),
    ));
    d
}

#[test]
fn dns_reply_seen_first_makes_its_sender_the_responder() {
    // 53 -> 53: no port-based flip; the first message is a reply, so its sender is the server.
    const REPLY: &[u8] = &[0x12, 0x34, 0x81, 0x80, 0, 0, 0, 0, 0, 0, 0, 0];
    const QUERY: &[u8] = &[0x12, 0x34, 0x01, 0x00, 0, 0, 0, 0, 0, 0, 0, 0];
    let (mut t, mut rows) = table(16);
    t.process(&udp_with(0, A, 53, B, 53, REPLY), &mut |r: ConnSummary| {
        rows.push(r)
    });
    t.process(&udp_with(S, A, 53, B, 53, REPLY), &mut |r: ConnSummary| {
        rows.push(r)
    });
    // A query first, or a reply to a multicast group, keeps the roles.
    t.process(
        &udp_with(0, A, 5353, B, 53, QUERY),
        &mut |r: ConnSummary| rows.push(r),
    );
    t.process(
        &udp_with(0, A, 5353, "224.0.0.251", 5353, REPLY),
        &mut |r: ConnSummary| rows.push(r),
    );
    t.flush_all(&mut |r: ConnSummary| rows.push(r));
    let flipped = rows
        .iter()
        .find(|r| r.orig_p == 53 && r.resp_p == 53)
        .unwrap();
    assert_eq!(flipped.orig_h, ip(B));
    // The sender's D moved with it to the responder side: no d for its second datagram.
    assert_eq!(flipped.history.as_bytes(), b"D^");
    assert_eq!((flipped.orig_pkts, flipped.resp_pkts), (0, 2));
    let query = rows
        .iter()
        .find(|r| r.orig_p == 5353 && r.resp_p == 53)
        .unwrap();
    assert_eq!(query.orig_h, ip(A));
    let mdns = rows.iter().find(|r| r.resp_p == 5353).unwrap();
    assert_eq!(mdns.orig_h, ip(A));
    assert_eq!(mdns.history.as_bytes(), b"D");
}

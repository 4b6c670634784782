use super::*;
use crate::flow::Uid;
use crate::logs::zeek::Utf8Policy;

fn ctx(resp: &str, port: u16) -> ConnCtx {
    ConnCtx {
        uid: Uid(42),
        orig: ("192.0.2.10".parse().unwrap(), 5353),
        resp: (resp.parse().unwrap(), port),
        tcp: false,
    }
}

/// `id`, query or response, one question, `answers` A records (192.0.2.1..).
fn message(id: u16, response: bool, qname: &[u8], qtype: u16, answers: u8) -> Vec<u8> {
    let mut m = id.to_be_bytes().to_vec();
    m.extend_from_slice(if response {
        &[0x84, 0x00]
    } else {
        &[0x01, 0x00]
    });
    m.extend_from_slice(&[0, 1, 0, answers, 0, 0, 0, 0]);
    for label in qname.split(|&b| b == b'.') {
        m.push(label.len() as u8);
        m.extend_from_slice(label);
    }
    m.push(0);
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&[0, 1]);
    for i in 0..answers {
        m.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 120, 0, 4, 192, 0, 2, 1 + i]);
    }
    m
}

fn rows(records: &[Record]) -> Vec<String> {
    records
        .iter()
        .map(|r| {
            let mut buf = Vec::new();
            let mut row = Row::new(&mut buf, Utf8Policy::PassValid);
            r.as_zeek().write_row(&mut row);
            row.finish();
            String::from_utf8(buf).unwrap()
        })
        .collect()
}

#[test]
fn paired_row_has_zeek_columns_and_pkts() {
    let mut a = DnsAnalyzer::new(Arc::new(Stats::default()));
    let mut conn = DnsConn::default();
    let mut out: Vec<Record> = Vec::new();
    let c = ctx("192.0.2.53", 53);
    assert!(a.message(
        &mut conn,
        c,
        &message(7, false, b"Host.Example", 1, 0),
        Ts(1_000_000),
        &mut out,
        None
    ));
    assert!(a.message(
        &mut conn,
        c,
        &message(7, true, b"host.example", 1, 2),
        Ts(1_250_000),
        &mut out,
        None
    ));
    assert!(out.is_empty(), "held in its window");
    a.finish(&mut out);
    let r = rows(&out);
    assert_eq!(
        r,
        ["1.000000\tC000000000000000000042\t192.0.2.10\t5353\t192.0.2.53\t53\tudp\t7\t0.250000\t\
          host.example\t1\tC_INTERNET\t1\tA\t0\tNOERROR\tT\tF\tT\tF\t0\t192.0.2.1,192.0.2.2\t\
          120.000000,120.000000\tF\t1\n"
            .replace("C000000000000000000042", &uid_text(Uid(42)))]
    );
    assert_eq!(DNS_SCHEMA.fields.len(), r[0].split('\t').count());
}

fn uid_text(u: Uid) -> String {
    let mut b = [0u8; UID_TEXT_MAX];
    let n = u.render_ascii(b'C', &mut b);
    String::from_utf8_lossy(&b[..n]).into_owned()
}

#[test]
fn identical_records_merge_into_pkts() {
    let stats = Arc::new(Stats::default());
    let mut a = DnsAnalyzer::new(stats.clone());
    let mut conn = DnsConn::default();
    let mut out: Vec<Record> = Vec::new();
    // mDNS: every message is a record; three identical announcements in 60 s, one later.
    let c = ctx("224.0.0.251", 5353);
    let q = message(0, false, b"printer.local", 33, 0);
    for t in [0, 10, 59] {
        a.advance(Ts::from_secs(1_000 + t), &mut out);
        a.message(&mut conn, c, &q, Ts::from_secs(1_000 + t), &mut out, None);
    }
    a.advance(Ts::from_secs(1_060), &mut out);
    assert_eq!(out.len(), 1, "the window closed 60 s after it opened");
    a.message(&mut conn, c, &q, Ts::from_secs(1_061), &mut out, None);
    a.finish(&mut out);
    let r = rows(&out);
    assert_eq!(r.len(), 2);
    assert!(
        r[0].starts_with("1000.000000\t") && r[0].ends_with("\tF\t3\n"),
        "{}",
        r[0]
    );
    assert!(r[0].contains("\tprinter.local\t1\tC_INTERNET\t33\tSRV\t-\t-\t"));
    assert!(r[1].starts_with("1061.000000\t") && r[1].ends_with("\t1\n"));
    let s = stats.snapshot();
    assert_eq!((s.dns_messages, s.dns_rows, s.dns_rows_merged), (4, 2, 2));
}

#[test]
fn netbios_query_names_are_decoded() {
    let mut a = DnsAnalyzer::new(Arc::new(Stats::default()));
    let mut conn = DnsConn::default();
    let mut out: Vec<Record> = Vec::new();
    let c = ctx("192.0.2.255", 137);
    let m = message(0x1234, false, b"FHEPFCELEHFCEPFFFACACACACACACABO", 33, 0);
    assert!(a.message(&mut conn, c, &m, Ts(5), &mut out, None));
    let mut records = Vec::new();
    a.end_sessions(&mut conn, c, &mut out);
    a.finish(&mut records);
    let r = rows(&records);
    assert_eq!(r.len(), 1);
    assert!(
        r[0].contains("\tWORKGROUP\t1\tC_INTERNET\t33\tNBSTAT\t-\t-\t"),
        "{}",
        r[0]
    );
}

#[test]
fn malformed_messages_are_counted_not_logged_as_dns() {
    let stats = Arc::new(Stats::default());
    let mut a = DnsAnalyzer::new(stats.clone());
    let mut conn = DnsConn::default();
    let mut out: Vec<Record> = Vec::new();
    let c = ctx("192.0.2.53", 53);
    assert!(!a.message(&mut conn, c, &[1, 2, 3], Ts(1), &mut out, None));
    let mut looped = message(1, false, b"a", 1, 0);
    looped.truncate(12);
    looped.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
    // A name pointing at itself ends there (empty); the rest still parses, as in Zeek.
    a.message(&mut conn, c, &looped, Ts(2), &mut out, None);
    let s = stats.snapshot();
    assert_eq!(s.dns_malformed, 2);
    // Too many questions: not DNS, the connection's DNS analysis stops.
    let mut many = message(1, false, b"a", 1, 0);
    many[5] = 26;
    assert!(!a.message(&mut conn, c, &many, Ts(3), &mut out, None));
    assert!(conn.disabled);
}

#[test]
fn content_detection_is_strict() {
    let q = message(0x4242, false, b"www.example.com", 1, 0);
    assert!(DnsAnalyzer::looks_like_dns(&q, false));
    let r = message(0x4242, true, b"www.example.com", 1, 2);
    assert!(DnsAnalyzer::looks_like_dns(&r, false));
    let mut tcp = (q.len() as u16).to_be_bytes().to_vec();
    tcp.extend_from_slice(&q);
    assert!(DnsAnalyzer::looks_like_dns(&tcp, true));
    assert!(
        DnsAnalyzer::looks_like_dns(&tcp[..20], true),
        "first segment of a message"
    );
    assert!(!DnsAnalyzer::looks_like_dns(&q, true), "no length prefix");
    assert!(!DnsAnalyzer::looks_like_dns(&tcp, false));
    // Random payloads are not DNS.
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut hits = 0;
    for _ in 0..20_000 {
        let len = 12 + (x % 100) as usize;
        let p: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        hits += usize::from(DnsAnalyzer::looks_like_dns(&p, false));
        hits += usize::from(DnsAnalyzer::looks_like_dns(&p, true));
    }
    assert_eq!(hits, 0);
}

#[test]
fn per_connection_state_stays_small() {
    // Every connection with DNS attached holds one of these (up to the app table's capacity),
    // usually with one query waiting.
    let conn = std::mem::size_of::<DnsConn>();
    let txn = std::mem::size_of::<session::Txn>();
    assert!(conn <= 96, "DnsConn is {conn} bytes");
    assert!(txn <= 72, "Txn is {txn} bytes");
}

use super::*;

/// Builds messages for the tests: a header, then whatever bytes the test appends.
struct Msg(Vec<u8>);

impl Msg {
    fn new(id: u16, flags: u16, counts: [u16; 4]) -> Msg {
        let mut v = Vec::new();
        v.extend_from_slice(&id.to_be_bytes());
        v.extend_from_slice(&flags.to_be_bytes());
        for c in counts {
            v.extend_from_slice(&c.to_be_bytes());
        }
        Msg(v)
    }

    fn name(mut self, dotted: &str) -> Msg {
        for label in dotted.split('.').filter(|l| !l.is_empty()) {
            self.0.push(label.len() as u8);
            self.0.extend_from_slice(label.as_bytes());
        }
        self.0.push(0);
        self
    }

    fn raw(mut self, b: &[u8]) -> Msg {
        self.0.extend_from_slice(b);
        self
    }

    fn u16(self, v: u16) -> Msg {
        self.raw(&v.to_be_bytes())
    }

    fn question(self, name: &str, qtype: u16, qclass: u16) -> Msg {
        self.name(name).u16(qtype).u16(qclass)
    }

    /// A record whose owner is a pointer to the first question's name (offset 12).
    fn rr(self, rtype: u16, class: u16, ttl: u32, rdata: &[u8]) -> Msg {
        self.raw(&[0xc0, 12])
            .u16(rtype)
            .u16(class)
            .raw(&ttl.to_be_bytes())
            .u16(rdata.len() as u16)
            .raw(rdata)
    }
}

const RESPONSE: u16 = 0x8180;
const QUERY: u16 = 0x0100;

fn parse_msg(m: &[u8]) -> Parsed {
    let mut p = Parsed::default();
    parse(m, Options::default(), &mut p);
    p
}

/// The rendered answers of a one-question response holding `rrs`.
fn answers_of(rrs: &[(u16, &[u8])]) -> (Vec<String>, Parsed) {
    let mut m =
        Msg::new(1, RESPONSE, [1, rrs.len() as u16, 0, 0]).question("Www.Example.COM", 1, 1);
    for (t, d) in rrs {
        m = m.rr(*t, 1, 300, d);
    }
    let p = parse_msg(&m.0);
    let v = p
        .replies
        .iter()
        .map(|r| String::from_utf8_lossy(p.str(&r.text)).into_owned())
        .collect();
    (v, p)
}

fn answer(t: u16, d: &[u8]) -> String {
    let (v, p) = answers_of(&[(t, d)]);
    assert!(p.confirmed, "type {t}: {:?}", p.weirds);
    assert_eq!(v.len(), 1, "type {t}: {v:?}");
    v[0].clone()
}

#[test]
fn header_fields() {
    let h = Header::parse(&[0x12, 0x34, 0xaf, 0xf3, 0, 1, 0, 2, 0, 3, 0, 4]).unwrap();
    assert_eq!(h.id, 0x1234);
    assert!(h.qr && h.aa && h.tc && h.rd && h.ra);
    assert_eq!((h.opcode, h.z, h.rcode), (5, 7, 3));
    assert_eq!((h.qdcount, h.ancount, h.nscount, h.arcount), (1, 2, 3, 4));
    assert_eq!(Header::parse(&[0; 11]), None);
}

#[test]
fn question_is_lower_cased_and_answers_rendered() {
    let (v, p) = answers_of(&[(1, &[192, 0, 2, 1]), (5, b"\x05Alias\xc0\x10")]);
    assert!(p.confirmed);
    assert_eq!(p.str(&p.qname), b"www.example.com");
    assert_eq!((p.qtype, p.qclass, p.questions), (1, 1, 1));
    assert_eq!(v, ["192.0.2.1", "alias.example.com"]);
    assert_eq!(p.str(&p.replies[0].owner), b"www.example.com");
    assert_eq!(p.replies[0].ttl, 300);
}

#[test]
fn every_common_type_renders_as_zeek_does() {
    let mut aaaa = [0u8; 16];
    aaaa[0] = 0x20;
    aaaa[1] = 0x01;
    aaaa[2] = 0x0d;
    aaaa[3] = 0xb8;
    aaaa[15] = 1;
    assert_eq!(answer(28, &aaaa), "2001:db8::1");
    assert_eq!(answer(2, b"\x02ns\xc0\x10"), "ns.example.com");
    assert_eq!(answer(12, b"\x04host\x00"), "host");
    assert_eq!(answer(15, b"\x00\x0a\x02mx\xc0\x10"), "mx.example.com");
    let mut soa = b"\x03ns1\xc0\x10\x05admin\xc0\x10".to_vec();
    soa.extend_from_slice(&[0; 20]);
    assert_eq!(answer(6, &soa), "ns1.example.com");
    assert_eq!(
        answer(16, b"\x05hello\x00\x03a b"),
        "TXT 5 hello TXT 0  TXT 3 a b"
    );
    assert_eq!(answer(99, b"\x0bv=spf1 -all"), "SPF 11 v=spf1 -all");
    assert_eq!(
        answer(33, b"\x00\x01\x00\x02\x14\x50\x03sip\xc0\x10"),
        "sip.example.com"
    );
    assert_eq!(
        answer(
            35,
            b"\x00\x64\x00\x0a\x01s\x08SIPS+D2T\x00\x05_sips\x04_tcp\xc0\x10"
        ),
        "NAPTR 100 10 s SIPS+D2T _sips._tcp.example.com"
    );
    assert_eq!(
        answer(35, b"\x00\x01\x00\x02\x01u\x07E2U+sip\x0b!^.*$!sip:!\x00"),
        "NAPTR 1 2 u E2U+sip !^.*$!sip:!"
    );
    assert_eq!(answer(43, &[0x12, 0x34, 8, 2, 0xaa, 0xbb]), "DS 8 2");
    assert_eq!(answer(48, &[1, 1, 3, 13, 0xaa, 0xbb]), "DNSKEY 13");
    let mut rrsig = vec![0, 48, 8, 2, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x12, 0x34];
    rrsig.extend_from_slice(b"\x07Example\x03com\x00\xde\xad");
    assert_eq!(answer(46, &rrsig), "RRSIG 48 example.com");
    let mut root = rrsig[..18].to_vec();
    root.extend_from_slice(b"\x00\xde\xad");
    assert_eq!(answer(46, &root), "RRSIG 48 <Root>");
    assert_eq!(
        answer(47, b"\x01z\xc0\x10\x00\x01\x40"),
        "NSEC www.example.com z.example.com"
    );
    assert_eq!(answer(50, &[1, 0, 0, 10, 0, 0, 0, 0]), "NSEC3");
    assert_eq!(answer(51, &[1, 0, 0, 10, 0]), "NSEC3PARAM");
    assert_eq!(
        answer(44, &[1, 1, 0xde, 0xad, 0xbe, 0xef]),
        "SSHFP: deadbeef"
    );
    assert_eq!(
        answer(
            29,
            &[0, 0x12, 0x16, 0x13, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3]
        ),
        "LOC:  18 22 19"
    );
    assert_eq!(answer(65534, &[8, 1, 2, 0, 1]), "BIND9 signing signal");
    assert_eq!(answer(99_99, b"xyz"), "<unknown type=9999>");
    assert_eq!(answer(39, b"\x00"), "<unknown type=39>");
    // WKS counts as a reply but shows nothing.
    assert_eq!(answer(11, &[192, 0, 2, 1, 6, 0]), "");
}

#[test]
fn types_zeek_parses_but_does_not_log() {
    for (t, d) in [
        (13u16, &b"\x03cpu\x02os"[..]),
        (41, b""),
        (64, b"\x00\x01\x00"),
        (65, b"\x00\x01\x00"),
        (249, b"\x00\x00\x00"),
        (250, b"\x00\x00\x00"),
        (257, b"\x00\x05issueletsencrypt.org"),
    ] {
        let (v, p) = answers_of(&[(t, d), (1, &[10, 0, 0, 1])]);
        assert!(p.confirmed, "type {t}");
        assert_eq!(v, ["10.0.0.1"], "type {t}");
    }
}

const NETBIOS: Options = Options {
    netbios: true,
    keep_queries: false,
};

#[test]
fn questions_kept_as_sent_for_a_rule_engine() {
    let m = Msg::new(3, QUERY, [2, 0, 0, 0])
        .question("WWW.Example.com", 1, 1)
        .question("b.Example.com", 28, 1);
    let mut p = Parsed::default();
    parse(
        &m.0,
        Options {
            keep_queries: true,
            ..Options::default()
        },
        &mut p,
    );
    let q: Vec<(&[u8], u16)> = p
        .queries
        .iter()
        .map(|(r, t)| (&p.query_text[r.clone()], *t))
        .collect();
    assert_eq!(
        q,
        [(&b"WWW.Example.com"[..], 1), (&b"b.Example.com"[..], 28)]
    );
    // dns.log still sees the lower-cased name.
    assert_eq!(p.str(&p.qname), b"b.example.com");
    assert!(parse_msg(&m.0).queries.is_empty());
}

#[test]
fn netbios_port_allows_long_labels_and_hides_nbstat() {
    let encoded = "ECFCFHEDDAEDECDDDIDDEEDBEGDEDCAA";
    let m = Msg::new(9, 0x8500, [1, 2, 0, 0])
        .question(encoded, 33, 1)
        .rr(33, 1, 0, &[0, 0])
        .rr(32, 1, 300, &[0, 0, 10, 0, 0, 1]);
    let mut p = Parsed::default();
    parse(&m.0, NETBIOS, &mut p);
    assert!(p.confirmed);
    assert!(p.replies.is_empty());
    assert_eq!(p.str(&p.qname), encoded.to_ascii_lowercase().as_bytes());
    // A 64-byte label is too long for DNS elsewhere: the name stops there.
    let long = "a".repeat(64);
    let m = Msg::new(9, QUERY, [1, 0, 0, 0]).question(&long, 1, 1);
    let p = parse_msg(&m.0);
    assert!(p.has(Weird::LabelTooLong));
    // As in Zeek, the type and class are then read from the label's bytes.
    assert_eq!((p.questions, p.str(&p.qname)), (1, &b""[..]));
    let mut p = Parsed::default();
    parse(&m.0, NETBIOS, &mut p);
    assert!(p.confirmed && p.weirds == 0);
    assert_eq!(p.str(&p.qname), long.as_bytes());
}

#[test]
fn dynamic_update_sections() {
    let m = Msg::new(0xbb50, 0xa805, [1, 4, 3, 0])
        .question("StratoLab.org", 6, 1)
        .raw(b"\x05nwin2\xc0\x0c")
        .u16(5)
        .u16(254)
        .raw(&[0, 0, 0, 0, 0, 0])
        .raw(&[0xc0, 0x1f])
        .u16(255)
        .u16(254)
        .raw(&[0, 0, 0, 0, 0, 0])
        .raw(&[0xc0, 0x1f])
        .u16(255)
        .u16(255)
        .raw(&[0, 0, 0, 0, 0, 0])
        .raw(&[0xc0, 0x1f])
        .u16(1)
        .u16(1)
        .raw(&[0, 0, 0, 0, 0, 4, 10, 0, 0, 1])
        // updates: delete an RRset, delete one RR, add an A
        .raw(&[0xc0, 0x1f])
        .u16(28)
        .u16(255)
        .raw(&[0, 0, 0, 0, 0, 0])
        .raw(&[0xc0, 0x1f])
        .u16(1)
        .u16(254)
        .raw(&[0, 0, 0, 0, 0, 4, 10, 0, 0, 2])
        .raw(&[0xc0, 0x1f])
        .u16(1)
        .u16(1)
        .raw(&[0, 0, 4, 0xb0, 0, 4, 192, 168, 1, 106]);
    let p = parse_msg(&m.0);
    assert!(p.confirmed, "{:x}", p.weirds);
    assert_eq!(p.questions, 0, "the zone is no question");
    let v: Vec<String> = p
        .replies
        .iter()
        .map(|r| String::from_utf8_lossy(p.str(&r.text)).into_owned())
        .collect();
    assert_eq!(
        v,
        [
            "pre: NoRRSet CNAME nwin2.stratolab.org",
            "pre: NameNotInUse nwin2.stratolab.org",
            "pre: NameInUse nwin2.stratolab.org",
            "pre: RRSetExists A nwin2.stratolab.org",
            "del: RRSet AAAA",
            "del: RR A nwin2.stratolab.org",
            "add: A nwin2.stratolab.org 192.168.1.106",
        ]
    );
    assert_eq!(p.replies.last().unwrap().ttl, 1200);
    assert_eq!(p.replies.last().unwrap().section, Section::Update);
}

#[test]
fn compression_loops_end() {
    // A pointer to itself, a pointer forward, two pointers pointing at each other.
    let to_self = Msg::new(1, QUERY, [1, 0, 0, 0]).raw(&[0xc0, 12, 0, 1, 0, 1]);
    let forward = Msg::new(1, QUERY, [1, 0, 0, 0]).raw(&[0xc0, 20, 0, 1, 0, 1, 1, b'a', 0]);
    let mutual = Msg::new(1, RESPONSE, [1, 1, 0, 0])
        .raw(&[0xc0, 18, 0, 1, 0, 1])
        .raw(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 1, 0, 0]);
    for m in [to_self, forward, mutual] {
        let p = parse_msg(&m.0);
        assert!(p.has(Weird::ForwardPointer), "{:?}", m.0);
    }
    // A long backwards chain (in the data of an unknown record, each pointer pointing at the
    // one before) is cut after MAX_POINTERS.
    let mut m = Msg::new(1, RESPONSE, [1, 2, 0, 0]).question("a", 1, 1).0;
    m.extend_from_slice(&[0xc0, 12, 0x27, 0x0f, 0, 1, 0, 0, 0, 1]);
    m.extend_from_slice(&(400u16).to_be_bytes());
    let chain_start = m.len();
    m.extend_from_slice(&[0xc0, 12]);
    for i in 0..199 {
        let prev = chain_start + 2 * i;
        m.extend_from_slice(&[0xc0 | (prev >> 8) as u8, prev as u8]);
    }
    let last = m.len() - 2;
    m.extend_from_slice(&[0xc0 | (last >> 8) as u8, last as u8]);
    m.extend_from_slice(&[0, 1, 0, 1, 0, 0, 0, 1, 0, 4, 1, 2, 3, 4]);
    let p = parse_msg(&m);
    assert!(p.has(Weird::TooManyPointers), "{:x}", p.weirds);
    assert!(p.confirmed);
}

#[test]
fn lengths_past_the_end() {
    // A label longer than what is left, an RDLENGTH past the end, a TXT string past RDLENGTH.
    let label = Msg::new(1, QUERY, [1, 0, 0, 0]).raw(&[40, b'a', b'b']);
    let p = parse_msg(&label.0);
    assert!(p.has(Weird::LabelPastEnd) && p.has(Weird::QuestionTooShort));
    assert!(!p.confirmed);
    let rdlen = Msg::new(1, RESPONSE, [1, 1, 0, 0])
        .question("a.b", 1, 1)
        .raw(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 1, 0x10, 0, 1, 2, 3, 4]);
    let p = parse_msg(&rdlen.0);
    assert!(p.has(Weird::RdataPastEnd) && !p.confirmed);
    let (v, p) = answers_of(&[(16, b"\x02ok\x09short")]);
    assert!(p.has(Weird::BadRdata) && !p.confirmed);
    assert_eq!(v, ["TXT 2 ok"], "what came before the bad string is kept");
    // An A record of the wrong size ends the section.
    let (v, p) = answers_of(&[(1, &[1, 2, 3]), (1, &[1, 2, 3, 4])]);
    assert!(v.is_empty() && !p.confirmed);
}

#[test]
fn huge_counts_and_truncation() {
    // Counts far beyond the bytes: the first record that does not fit ends the section.
    let m = Msg::new(1, RESPONSE, [1, 0xffff, 0xffff, 0xffff])
        .question("x.example", 1, 1)
        .rr(1, 1, 5, &[1, 1, 1, 1]);
    let p = parse_msg(&m.0);
    assert!(p.has(Weird::RecordTooShort) && !p.confirmed);
    assert_eq!(p.replies.len(), 1);
    // More than 25 questions is not DNS.
    let m = Msg::new(1, QUERY, [26, 0, 0, 0]).question("a", 1, 1);
    let p = parse_msg(&m.0);
    assert!(p.violation && !p.confirmed);
    // Every prefix of a good message parses without panicking, and none confirms but the
    // whole (from the end of the question on).
    let (_, whole) = answers_of(&[(1, &[1, 2, 3, 4])]);
    assert!(whole.confirmed);
    let full = Msg::new(1, RESPONSE, [1, 1, 0, 0])
        .question("x.example", 1, 1)
        .rr(1, 1, 5, &[1, 1, 1, 1])
        .0;
    for n in 0..full.len() {
        let mut p = Parsed::default();
        let header = parse(&full[..n], Options::default(), &mut p);
        assert_eq!(header, n >= HEADER_LEN);
        assert!(!p.confirmed, "prefix {n}");
    }
}

#[test]
fn answers_are_bounded() {
    let rrs: Vec<(u16, &[u8])> = (0..150).map(|_| (1u16, &[9u8, 9, 9, 9][..])).collect();
    let (v, p) = answers_of(&rrs);
    assert!(p.confirmed);
    assert_eq!(v.len(), MAX_ANSWERS);
    // A name budget: 9 labels of 63 bytes do not fit 512 bytes.
    let long: Vec<String> = (0..9).map(|_| "b".repeat(63)).collect();
    let m = Msg::new(1, QUERY, [1, 0, 0, 0]).question(&long.join("."), 1, 1);
    let p = parse_msg(&m.0);
    assert!(p.has(Weird::LabelTooLong));
    assert!(p.text.len() <= 512);
}

#[test]
fn plausibility() {
    let q = Msg::new(0x1234, QUERY, [1, 0, 0, 0])
        .question("www.example.com", 1, 1)
        .0;
    assert!(plausible(&q, true));
    assert!(plausible(&q[..20], false));
    let mut trailing = q.clone();
    trailing.push(0);
    assert!(!plausible(&trailing, true));
    let r = Msg::new(0x1234, RESPONSE, [1, 1, 0, 0])
        .question("www.example.com", 1, 1)
        .rr(1, 1, 60, &[1, 2, 3, 4])
        .0;
    assert!(plausible(&r, true));
    assert!(!plausible(&r[..r.len() - 1], true));
    // Not DNS: text, zeros, a bad class, a binary name, an unknown opcode.
    assert!(!plausible(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", true));
    assert!(!plausible(&[0; 64], true));
    let bad_class = Msg::new(1, QUERY, [1, 0, 0, 0]).question("a.b", 1, 77).0;
    assert!(!plausible(&bad_class, true));
    let binary = Msg::new(1, QUERY, [1, 0, 0, 0])
        .raw(&[2, 0x01, 0xff, 0, 0, 1, 0, 1])
        .0;
    assert!(!plausible(&binary, true));
    let iquery = Msg::new(1, 0x0800, [1, 0, 0, 0]).question("a.b", 1, 1).0;
    assert!(!plausible(&iquery, true));
}

/// A small xorshift generator: reproducible random bytes without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn random_and_mutated_messages_never_panic() {
    let seeds: Vec<Vec<u8>> = vec![
        Msg::new(1, RESPONSE, [1, 3, 0, 0])
            .question("www.example.com", 1, 1)
            .rr(5, 1, 60, b"\x03foo\xc0\x10")
            .rr(16, 1, 60, b"\x03abc\x02de")
            .rr(
                46,
                1,
                60,
                &[
                    0, 1, 8, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xc0, 0x10,
                ],
            )
            .0,
        Msg::new(2, 0x2800, [1, 1, 2, 0])
            .question("zone.example", 6, 1)
            .rr(5, 254, 0, b"")
            .rr(1, 255, 0, b"")
            .rr(1, 1, 60, &[1, 2, 3, 4])
            .0,
        Msg::new(3, RESPONSE, [1, 1, 0, 0])
            .question("n.example", 35, 1)
            .rr(35, 1, 60, b"\x00\x01\x00\x01\x01s\x01x\x00\xc0\x0c")
            .0,
    ];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut p = Parsed::default();
    for round in 0..6000 {
        let msg: Vec<u8> = if round % 3 == 0 {
            let len = rng.below(300);
            (0..len).map(|_| rng.next() as u8).collect()
        } else {
            let mut m = seeds[round % seeds.len()].clone();
            for _ in 0..1 + rng.below(6) {
                let i = rng.below(m.len());
                match rng.below(4) {
                    0 => m[i] = rng.next() as u8,
                    1 => m[i] = [0xc0, 0x3f, 0xff, 0x00][rng.below(4)],
                    2 => m.truncate(i),
                    _ => m.insert(i, rng.next() as u8),
                }
                if m.is_empty() {
                    break;
                }
            }
            m
        };
        for netbios in [false, true] {
            parse(
                &msg,
                Options {
                    netbios,
                    ..Options::default()
                },
                &mut p,
            );
            assert!(p.replies.len() <= MAX_ANSWERS * 2);
            assert!(p.text.len() <= MAX_TEXT + 2 * MAX_STRING + 25 * NAME_BUDGET);
            for r in &p.replies {
                assert!(r.text.end <= p.text.len() && r.owner.end <= p.text.len());
            }
        }
        let _ = plausible(&msg, true);
        let _ = plausible(&msg, false);
    }
}

#[test]
fn ipv4_text_is_what_display_writes() {
    for o in 0..=255u8 {
        for a in [
            [o, 0, 9, 10],
            [99, o, 100, 255],
            [1, 22, o, 3],
            [200, 7, 65, o],
        ] {
            let mut t = Vec::new();
            push_ipv4(&mut t, a);
            assert_eq!(t, std::net::Ipv4Addr::from(a).to_string().into_bytes());
        }
    }
}

#[test]
fn lowercase_matches_ascii_lowercase_for_every_byte_and_length() {
    let bytes: Vec<u8> = (0..=255u8)
        .chain(b"MiXeD.CaSe.Example".iter().copied())
        .collect();
    for len in 0..bytes.len() {
        for start in [0, 1, 7] {
            let Some(slice) = bytes.get(start..start + len) else {
                continue;
            };
            let mut got = slice.to_vec();
            lowercase(&mut got);
            assert_eq!(got, slice.to_ascii_lowercase());
        }
    }
}

#[test]
fn owner_pointing_at_the_question_reads_as_the_question() {
    let m = Msg::new(1, RESPONSE, [1, 1, 0, 0])
        .question("Www.Example.COM", 1, 1)
        .rr(1, 1, 60, &[192, 0, 2, 1]);
    for keep_queries in [false, true] {
        let mut p = Parsed::default();
        let opt = Options {
            keep_queries,
            ..Options::default()
        };
        assert!(parse(&m.0, opt, &mut p));
        assert_eq!(p.str(&p.replies[0].owner), b"www.example.com");
        assert_eq!(p.weirds, 0);
    }
    // A question ending in a pointer (here into the header, a weird) is not copied: the
    // owner is read again, with the same outcome.
    let m = Msg::new(1, RESPONSE, [1, 1, 0, 0])
        .raw(b"\x03Www\xc0\x02")
        .u16(1)
        .u16(1)
        .rr(1, 1, 60, &[192, 0, 2, 1]);
    let p = parse_msg(&m.0);
    assert_eq!(p.str(&p.replies[0].owner), p.str(&p.qname));
    assert_eq!(p.str(&p.qname), b"www");
}

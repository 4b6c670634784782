//! p0f-k.log lines as the writer renders them, against the same text built with `format!`.

use std::net::IpAddr;
use std::sync::Arc;

use super::sig::{opt, quirk, Layout, PacketSig};
use super::P0fRecord;
use crate::logs::zeek::{Row, Utf8Policy, ZeekRecord};
use crate::ts::Ts;

fn record(ts: i64, ip: &str, sig: PacketSig, syn_mss: u16) -> P0fRecord {
    P0fRecord {
        ts: Ts(ts),
        syn_ack: syn_mss != 0,
        ip: ip.parse().unwrap(),
        mac: [0x02, 0x00, 0xab, 0xcd, 0x0e, 0xff],
        os: Arc::from("Linux 3.11 and newer"),
        sig,
        syn_mss,
    }
}

fn sig(kinds: &[u8], quirks: u32) -> PacketSig {
    let mut layout = Layout::default();
    for &k in kinds {
        assert!(layout.push(k));
    }
    PacketSig {
        ver: 4,
        ttl: 57,
        olen: 0,
        mss: 1460,
        win: 29200,
        wscale: 7,
        layout,
        eol_pad: 3,
        quirks,
        payload: false,
        ts1: 1,
        tot_hdr: 60,
    }
}

/// The address as p0f prints it, the slow way.
fn p0f_addr(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(a) => a.to_string(),
        IpAddr::V6(a) => a
            .segments()
            .iter()
            .map(|g| format!("{g:x}"))
            .collect::<Vec<_>>()
            .join(":"),
    }
}

#[test]
fn lines_match_the_formatted_text() {
    let all_quirks = (1 << quirk::NAMES.len()) - 1;
    let kinds = [
        opt::MSS,
        opt::SOK,
        opt::TS,
        opt::NOP,
        opt::WS,
        opt::SACK,
        99,
        opt::EOL,
    ];
    for (ts, ip) in [
        (1_717_401_600_000_006, "10.20.1.45"),
        (0, "0.0.0.0"),
        (-1_500_000, "255.255.255.255"),
        (-1, "fe80::1"),
        (5, "2001:db8:0:10:abc:ffff:100:1"),
        (7, "::"),
    ] {
        for (s, syn_mss) in [
            (sig(&kinds, all_quirks), 0),
            (sig(&[], 0), 1460),
            (sig(&[opt::MSS], quirk::DF), 0),
        ] {
            let r = record(ts, ip, s, syn_mss);
            let (secs, us) = (ts.div_euclid(1_000_000), ts.rem_euclid(1_000_000));
            let want = format!(
                "{secs}.{us:06}\t{}\t{}\t02:00:ab:cd:0e:ff\tLinux 3.11 and newer\t{}",
                if syn_mss != 0 { "syn+ack" } else { "syn" },
                p0f_addr(r.ip),
                r.raw_sig()
            );
            assert_eq!(r.line(), want);
            let mut buf = Vec::new();
            let mut row = Row::new(&mut buf, Utf8Policy::PassValid);
            r.write_row(&mut row);
            row.finish();
            assert_eq!(String::from_utf8(buf).unwrap(), format!("{want}\n"));
        }
    }
    let r = record(0, "10.0.0.1", sig(&kinds, all_quirks), 0);
    let mut quirks = String::new();
    super::sig::render_quirks(all_quirks, &mut quirks).unwrap();
    assert_eq!(quirks, quirk::NAMES.join(","));
    assert_eq!(
        r.raw_sig(),
        format!("4:57+7:0:1460:mss*20,7:mss,sok,ts,nop,ws,sack,?99,eol+3:{quirks}:0")
    );
    assert_eq!(
        format!("{:?}", r.sig.layout),
        "mss,sok,ts,nop,ws,sack,?99,eol+0"
    );
}

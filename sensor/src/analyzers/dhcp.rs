//! dhcp2.log: DHCPv4 client requests to 67/udp, for the host name, parameter-request list and
//! vendor class a client announces (reference §3.9).
//!
//! `src_mac` is the client hardware address from the BOOTP header (what the client says it is,
//! also behind a relay), `src_ip` the packet's source (0.0.0.0 before a lease). Server replies
//! (BOOTREPLY, also sent to 67/udp when relayed) are not requests and are not logged. A message
//! whose options run past its end is malformed: no row.

use std::net::IpAddr;

use super::ot::{mac_text, strip_controls, Malformed, OtKey, Parsed};
use super::window::Agg;
use crate::logs::zeek::{LogStyle, Row, Schema};

pub static DHCP_SCHEMA: Schema = Schema {
    path: "dhcp2",
    fields: &[
        ("ts", "time"),
        ("src_ip", "addr"),
        ("src_mac", "string"),
        ("hostname", "string"),
        ("parameter_list", "vector[count]"),
        ("class_id", "string"),
    ],
    style: LogStyle::FieldsLine,
};

const BOOTREQUEST: u8 = 1;
const FIXED: usize = 236;
const MAGIC: [u8; 4] = [0x63, 0x82, 0x53, 0x63];
const CHADDR: usize = 28;

mod opt {
    pub const PAD: u8 = 0;
    pub const HOST_NAME: u8 = 12;
    pub const PARAMETER_REQUESTS: u8 = 55;
    pub const CLASS_IDENTIFIER: u8 = 60;
    pub const END: u8 = 255;
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DhcpKey {
    pub src_ip: IpAddr,
    /// The client hardware address as text (`hlen` bytes).
    pub src_mac: Box<[u8]>,
    pub hostname: Option<Box<[u8]>>,
    pub parameter_list: Option<Box<[u8]>>,
    pub class_id: Option<Box<[u8]>>,
}

/// A UDP payload sent to 67/udp.
pub fn parse(src: IpAddr, p: &[u8]) -> Parsed<DhcpKey> {
    if p.len() < FIXED + MAGIC.len() || p[FIXED..FIXED + 4] != MAGIC {
        return Err(Malformed);
    }
    if p[0] != BOOTREQUEST {
        return Ok(None);
    }
    let hlen = usize::from(p[2]);
    if hlen > 16 {
        return Err(Malformed);
    }
    let mut key = DhcpKey {
        src_ip: src,
        src_mac: mac_text(&p[CHADDR..CHADDR + hlen]).into(),
        hostname: None,
        parameter_list: None,
        class_id: None,
    };
    let mut rest = &p[FIXED + 4..];
    while let Some((&code, tail)) = rest.split_first() {
        match code {
            opt::PAD => {
                rest = tail;
                continue;
            }
            opt::END => break,
            _ => {}
        }
        let (&len, tail) = tail.split_first().ok_or(Malformed)?;
        let data = tail.get(..usize::from(len)).ok_or(Malformed)?;
        rest = &tail[usize::from(len)..];
        match code {
            opt::HOST_NAME => key.hostname = Some(strip_controls(data)),
            opt::PARAMETER_REQUESTS => key.parameter_list = Some(data.into()),
            opt::CLASS_IDENTIFIER => key.class_id = Some(data.into()),
            _ => {}
        }
    }
    Ok(Some(key))
}

impl OtKey for DhcpKey {
    fn schema() -> &'static Schema {
        &DHCP_SCHEMA
    }

    fn write_row(&self, agg: &Agg, row: &mut Row<'_>) {
        row.time(agg.first);
        row.addr(self.src_ip);
        row.string(&self.src_mac);
        row.string_opt(self.hostname.as_deref());
        match &self.parameter_list {
            Some(codes) => {
                let texts: Vec<String> = codes.iter().map(u8::to_string).collect();
                row.string_list(Some(texts.iter().map(|s| s.as_bytes())));
            }
            None => row.unset(),
        }
        row.string_opt(self.class_id.as_deref());
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A DHCPDISCOVER with the given options (code, data).
    pub(crate) fn request(opts: &[(u8, &[u8])]) -> Vec<u8> {
        let mut p = vec![0u8; FIXED];
        p[0] = BOOTREQUEST;
        p[1] = 1;
        p[2] = 6;
        p[CHADDR..CHADDR + 6].copy_from_slice(&[0x32, 0x05, 0x33, 0x83, 0xb1, 0xe7]);
        p.extend_from_slice(&MAGIC);
        p.extend_from_slice(&[53, 1, 1]);
        for (c, d) in opts {
            p.push(*c);
            p.push(d.len() as u8);
            p.extend_from_slice(d);
        }
        p.push(opt::END);
        p
    }

    fn render(k: &DhcpKey) -> String {
        let mut buf = Vec::new();
        let mut row = Row::new(&mut buf, crate::logs::zeek::Utf8Policy::PassValid);
        k.write_row(
            &Agg {
                first: crate::ts::Ts(1_539_480_862_362_578),
                last: crate::ts::Ts(0),
                count: 1,
            },
            &mut row,
        );
        row.finish();
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn reads_the_announced_identity() {
        let p = request(&[
            (12, b"DESKTOP-\x01QVGI2E4"),
            (
                55,
                &[1, 3, 6, 15, 31, 33, 43, 44, 46, 47, 119, 121, 249, 252],
            ),
            (60, b"MSFT 5.0"),
        ]);
        let k = parse("0.0.0.0".parse().unwrap(), &p).unwrap().unwrap();
        assert_eq!(
            render(&k),
            "1539480862.362578\t0.0.0.0\t32:05:33:83:b1:e7\tDESKTOP-QVGI2E4\t1,3,6,15,31,33,43,44,46,47,119,121,249,252\tMSFT 5.0\n"
        );
        let bare = parse("0.0.0.0".parse().unwrap(), &request(&[]))
            .unwrap()
            .unwrap();
        assert!(render(&bare).ends_with("\t-\t-\t-\n"));
    }

    #[test]
    fn truncated_options_and_bad_headers() {
        let src: IpAddr = "0.0.0.0".parse().unwrap();
        let mut p = request(&[(12, b"host")]);
        p.truncate(p.len() - 3); // END and part of the host name gone
        assert_eq!(parse(src, &p), Err(Malformed));
        let mut long_hlen = request(&[]);
        long_hlen[2] = 17;
        assert_eq!(parse(src, &long_hlen), Err(Malformed));
        assert_eq!(parse(src, &[1; 100]), Err(Malformed));
        let mut reply = request(&[]);
        reply[0] = 2;
        assert_eq!(parse(src, &reply), Ok(None));
    }
}

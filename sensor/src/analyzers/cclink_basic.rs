//! cclink-ief-basic.log: CC-Link IE Field Basic cyclic exchanges over 61450/udp (reference
//! §3.14). The master's cyclic data requests and the slaves' responses are counted per
//! connection; a request's command (`0x0e70` = cyclic) is its `cmd`.

use std::net::IpAddr;

use super::ot::{be16, Malformed, OtKey, Parsed};
use super::window::Agg;
use crate::flow::uid::UID_TEXT_MAX;
use crate::flow::{PacketView, Uid};
use crate::logs::zeek::{LogStyle, Row, Schema};

pub static BASIC_SCHEMA: Schema = Schema {
    path: "cclink-ief-basic",
    fields: &[
        ("ts", "time"),
        ("uid", "string"),
        ("id.orig_h", "addr"),
        ("id.orig_p", "port"),
        ("id.resp_h", "addr"),
        ("id.resp_p", "port"),
        ("pdu", "string"),
        ("cmd", "string"),
        ("number", "int"),
        ("ts_end", "time"),
    ],
    style: LogStyle::Zeek,
};

const REQUEST: u16 = 0x5000;
const RESPONSE: u16 = 0xd000;
/// Offset of the request's command (after the frame type and the fixed header bytes).
const COMMAND: usize = 11;
const CYCLIC: [u8; 2] = [0x70, 0x0e];

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Cmd {
    Cyclic,
    Unknown([u8; 2]),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BasicKey {
    pub uid: Uid,
    pub orig: (IpAddr, u16),
    pub resp: (IpAddr, u16),
    pub request: bool,
    /// Requests only.
    pub cmd: Option<Cmd>,
}

/// Parses the payload of a packet on 61450/udp.
pub fn parse_payload(p: &[u8]) -> Result<Option<(bool, Option<Cmd>)>, Malformed> {
    match be16(p, 0).ok_or(Malformed)? {
        REQUEST => {
            let c = p.get(COMMAND..COMMAND + 2).ok_or(Malformed)?;
            let cmd = if c == CYCLIC {
                Cmd::Cyclic
            } else {
                Cmd::Unknown([c[0], c[1]])
            };
            Ok(Some((true, Some(cmd))))
        }
        RESPONSE => Ok(Some((false, None))),
        _ => Ok(None),
    }
}

pub fn parse(v: &PacketView<'_, '_>, p: &[u8]) -> Parsed<BasicKey> {
    Ok(parse_payload(p)?.map(|(request, cmd)| BasicKey {
        uid: v.uid,
        orig: v.orig,
        resp: v.resp,
        request,
        cmd,
    }))
}

impl OtKey for BasicKey {
    fn schema() -> &'static Schema {
        &BASIC_SCHEMA
    }

    fn write_row(&self, agg: &Agg, row: &mut Row<'_>) {
        row.time(agg.first);
        let mut uid = [0u8; UID_TEXT_MAX];
        let n = self.uid.render_ascii(b'C', &mut uid);
        row.string(&uid[..n]);
        row.addr(self.orig.0);
        row.port(self.orig.1);
        row.addr(self.resp.0);
        row.port(self.resp.1);
        row.string(if self.request {
            b"cyclicDataReq"
        } else {
            b"cyclicDataRes"
        });
        match self.cmd {
            None => row.unset(),
            Some(Cmd::Cyclic) => row.string(b"cyclic"),
            Some(Cmd::Unknown(c)) => row.string(&[b"unknown_ct_".as_slice(), &c].concat()),
        }
        row.count(agg.count);
        row.time(agg.last);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_responses() {
        let mut req = vec![
            0x50, 0, 0, 0xff, 0xff, 0x03, 0, 0x2c, 0, 0, 0, 0x70, 0x0e, 0, 0,
        ];
        assert_eq!(parse_payload(&req), Ok(Some((true, Some(Cmd::Cyclic)))));
        req[11] = 0x71;
        assert_eq!(
            parse_payload(&req),
            Ok(Some((true, Some(Cmd::Unknown([0x71, 0x0e])))))
        );
        assert_eq!(parse_payload(&[0xd0, 0]), Ok(Some((false, None))));
        assert_eq!(parse_payload(&[0x12, 0x34]), Ok(None));
        for n in 2..13 {
            assert_eq!(parse_payload(&req[..n]), Err(Malformed), "{n}");
        }
        assert_eq!(parse_payload(&[0x50]), Err(Malformed));
    }
}

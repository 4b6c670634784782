//! ssdp.log: SSDP (UPnP discovery) to 1900/udp and the unicast replies from 1900/udp: which
//! devices announce themselves, what software they run and who searches (reference §3.13).
//!
//! A message is CRLF-terminated lines; the first line gives the method: `NOTIFY` (an
//! announcement, with the device's `SERVER` header), `M-SEARCH Request` (a search, with the
//! searcher's `USER-AGENT`) or `M-SEARCH Response` (a device answering a search, with its
//! `SERVER`). Any other first line is still logged, with the method unset. The reference only
//! sees replies that happen to come back to 1900/udp; the product also logs those sent from
//! 1900/udp to the searcher's port (as the reference's earlier writer did), so a device that
//! only answers searches is listed too.

use std::net::IpAddr;

use super::ot::{Malformed, OtKey, Parsed};
use super::window::Agg;
use crate::logs::zeek::{LogStyle, Row, Schema};

pub static SSDP_SCHEMA: Schema = Schema {
    path: "ssdp",
    fields: &[
        ("ts", "time"),
        ("src_ip", "addr"),
        ("src_mac", "string"),
        ("method", "string"),
        ("server_or_user_agent", "string"),
    ],
    style: LogStyle::FieldsLine,
};

/// Longest header value kept (a `SERVER` line is a few dozen bytes; the cap bounds keys).
const MAX_VALUE: usize = 256;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    Notify,
    SearchRequest,
    SearchResponse,
}

impl Method {
    fn name(self) -> &'static str {
        match self {
            Method::Notify => "NOTIFY",
            Method::SearchRequest => "M-SEARCH Request",
            Method::SearchResponse => "M-SEARCH Response",
        }
    }
}

/// Whether the datagram went to 1900/udp or came from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    ToPort,
    FromPort,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SsdpKey {
    pub src_ip: IpAddr,
    pub src_mac: Option<[u8; 6]>,
    pub method: Option<Method>,
    pub server_or_user_agent: Option<Box<[u8]>>,
}

/// The lines of a message, without their CRLF; `None` unless it ends in CRLF.
fn lines(p: &[u8]) -> Option<impl Iterator<Item = &[u8]>> {
    let body = p.strip_suffix(b"\r\n")?;
    Some(
        body.split(|&b| b == b'\n')
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l)),
    )
}

/// A UDP payload to or from 1900/udp.
pub fn parse(src: IpAddr, src_mac: Option<[u8; 6]>, p: &[u8], dir: Direction) -> Parsed<SsdpKey> {
    let mut it = lines(p).ok_or(Malformed)?;
    let first = it.next().unwrap_or_default();
    let method = match first {
        b"NOTIFY * HTTP/1.1" => Some(Method::Notify),
        b"M-SEARCH * HTTP/1.1" => Some(Method::SearchRequest),
        b"HTTP/1.1 200 OK" => Some(Method::SearchResponse),
        _ => None,
    };
    // From 1900/udp only the answers to a search are SSDP (a request from that port to some
    // other port would be a reply to nothing).
    if dir == Direction::FromPort && method != Some(Method::SearchResponse) {
        return Ok(None);
    }
    let wanted: &[u8] = match method {
        Some(Method::SearchRequest) => b"USER-AGENT: ",
        _ => b"SERVER: ",
    };
    let mut value = None;
    for line in it {
        let Some(sp) = line.iter().position(|&b| b == b' ') else {
            continue;
        };
        if line[..=sp].eq_ignore_ascii_case(wanted) {
            let v = &line[sp + 1..];
            value = Some(Box::from(&v[..v.len().min(MAX_VALUE)]));
        }
    }
    Ok(Some(SsdpKey {
        src_ip: src,
        src_mac,
        method,
        server_or_user_agent: value,
    }))
}

/// Whether a datagram is an SSDP message (service confirmation).
pub fn looks_valid(p: &[u8]) -> bool {
    p.ends_with(b"\r\n")
        && (p.starts_with(b"NOTIFY * HTTP/1.1\r\n")
            || p.starts_with(b"M-SEARCH * HTTP/1.1\r\n")
            || p.starts_with(b"HTTP/1.1 200 OK\r\n"))
}

impl OtKey for SsdpKey {
    fn schema() -> &'static Schema {
        &SSDP_SCHEMA
    }

    fn write_row(&self, agg: &Agg, row: &mut Row<'_>) {
        row.time(agg.first);
        row.addr(self.src_ip);
        super::ot::write_mac(row, self.src_mac);
        row.string_opt(self.method.map(|m| m.name().as_bytes()));
        row.string_opt(self.server_or_user_agent.as_deref());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src() -> IpAddr {
        "192.168.1.131".parse().unwrap()
    }

    #[test]
    fn methods_and_headers() {
        let notify =
            b"NOTIFY * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nServer: Linux UPnP/1.0\r\n\r\n";
        let k = parse(src(), None, notify, Direction::ToPort)
            .unwrap()
            .unwrap();
        assert_eq!(k.method, Some(Method::Notify));
        assert_eq!(
            k.server_or_user_agent.as_deref(),
            Some(&b"Linux UPnP/1.0"[..])
        );
        let search = b"M-SEARCH * HTTP/1.1\r\nSERVER: x\r\nUser-Agent: Chrome\r\n\r\n";
        let k = parse(src(), None, search, Direction::ToPort)
            .unwrap()
            .unwrap();
        assert_eq!(k.method, Some(Method::SearchRequest));
        assert_eq!(k.server_or_user_agent.as_deref(), Some(&b"Chrome"[..]));
        let no_ua = b"M-SEARCH * HTTP/1.1\r\nMX: 1\r\n\r\n";
        let k = parse(src(), None, no_ua, Direction::ToPort)
            .unwrap()
            .unwrap();
        assert_eq!(k.server_or_user_agent, None);
        let reply = b"HTTP/1.1 200 OK\r\nSERVER: POSIX UPnP/1.0\r\n\r\n";
        let k = parse(src(), None, reply, Direction::FromPort)
            .unwrap()
            .unwrap();
        assert_eq!(k.method, Some(Method::SearchResponse));
        let odd = b"GET / HTTP/1.1\r\nSERVER: y\r\n";
        let k = parse(src(), None, odd, Direction::ToPort).unwrap().unwrap();
        assert_eq!(
            (k.method, k.server_or_user_agent.as_deref()),
            (None, Some(&b"y"[..]))
        );
        assert_eq!(parse(src(), None, notify, Direction::FromPort), Ok(None));
    }

    #[test]
    fn unterminated_messages() {
        assert_eq!(parse(src(), None, b"", Direction::ToPort), Err(Malformed));
        assert_eq!(
            parse(
                src(),
                None,
                b"NOTIFY * HTTP/1.1\r\nSERVER: x",
                Direction::ToPort
            ),
            Err(Malformed)
        );
        let long = [
            b"NOTIFY * HTTP/1.1\r\nSERVER: ".as_slice(),
            &[b'a'; 1000],
            b"\r\n",
        ]
        .concat();
        let k = parse(src(), None, &long, Direction::ToPort)
            .unwrap()
            .unwrap();
        assert_eq!(k.server_or_user_agent.unwrap().len(), MAX_VALUE);
    }
}

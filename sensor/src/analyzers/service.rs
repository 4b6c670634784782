//! Service detection: which application protocol a connection speaks, by content.
//!
//! Zeek puts a protocol into conn.log's `service` once that protocol's analyzer confirms it,
//! and it attaches analyzers both by well-known port and by content signatures (DPD). The
//! sensor does the same with cheap checks on the first payload of each direction:
//! - DNS and HTTP get their full analyzers attached (by port, or because the payload parses);
//!   those analyzers confirm the service themselves;
//! - the other common protocols (TLS, SSH, FTP, SMTP, POP3, IMAP, NTP, DHCP and the industrial
//!   ones) have no log of their own here, so a characteristic exchange confirms them directly:
//!   what Zeek's signature pairs (client pattern plus server pattern) or port-bound analyzers
//!   would accept.
//!
//! Detection looks at no more than [`MAX_PROBES`] payload packets per direction and keeps a
//! few bits per connection; then it gives up.

use std::net::IpAddr;

use crate::flow::{PacketView, Transport4};
use crate::stats::Stats;

use super::dns::DnsAnalyzer;
use super::http::HttpAnalyzer;
use super::AppState;

/// Payload packets per direction that detection inspects.
pub const MAX_PROBES: u8 = 4;

/// Partial evidence collected so far (one bit per half of a client/server pattern pair).
#[derive(Clone, Copy, Debug, Default)]
pub struct Detect {
    orig_probes: u8,
    resp_probes: u8,
    seen: u16,
    done: bool,
}

/// The `ftp` bit of [`AppState::services`].
pub const FTP_BIT: u64 = 1 << 4;

impl Detect {
    /// No more detection on this connection (its service is known otherwise).
    pub fn stop(&mut self) {
        self.done = true;
    }
}

mod seen {
    pub const TLS_CLIENT: u16 = 1 << 0;
    pub const TLS_SERVER: u16 = 1 << 1;
    pub const SSH_CLIENT: u16 = 1 << 2;
    pub const SSH_SERVER: u16 = 1 << 3;
    pub const GREETING_220: u16 = 1 << 4;
    pub const FTP_USER: u16 = 1 << 5;
    pub const SMTP_HELO: u16 = 1 << 6;
    pub const POP3_OK: u16 = 1 << 7;
    pub const POP3_CMD: u16 = 1 << 8;
    pub const IMAP_OK: u16 = 1 << 9;
    pub const IMAP_CMD: u16 = 1 << 10;
}

/// Ports on which Zeek attaches its DNS analyzer without looking at content.
fn dns_port(p: u16, t: Transport4) -> bool {
    match t {
        Transport4::Udp => matches!(p, 53 | 137 | 5353 | 5355),
        Transport4::Tcp => p == 53,
        _ => false,
    }
}

/// Ports on which Zeek attaches its HTTP analyzer without looking at content.
fn http_port(p: u16) -> bool {
    matches!(p, 80 | 81 | 631 | 1080 | 3128 | 8000 | 8080 | 8888)
}

/// Inspects one payload packet of a connection and attaches or confirms what it finds.
#[inline]
pub fn detect(st: &mut AppState, v: &PacketView<'_, '_>, stats: &Stats) {
    // Most packets belong to connections whose detection is over.
    if !st.detect.done {
        probe(st, v, stats);
    }
}

#[inline(never)]
fn probe(st: &mut AppState, v: &PacketView<'_, '_>, stats: &Stats) {
    let d = &mut st.detect;
    let probes = if v.is_orig {
        &mut d.orig_probes
    } else {
        &mut d.resp_probes
    };
    if *probes >= MAX_PROBES {
        if d.orig_probes >= MAX_PROBES && d.resp_probes >= MAX_PROBES {
            d.done = true;
        }
        return;
    }
    *probes += 1;
    let payload = v.payload();
    let resp_port = v.resp.1;
    match v.transport {
        Transport4::Udp => {
            if st.dns.is_none()
                && (dns_port(resp_port, Transport4::Udp)
                    || dns_port(v.orig.1, Transport4::Udp)
                    || DnsAnalyzer::looks_like_dns(payload, false))
            {
                st.dns = Some(Box::default());
            }
            if let Some(name) = udp_service(v.orig.1, resp_port, payload) {
                confirm(st, name, stats);
            }
        }
        Transport4::Tcp => {
            if st.dns.is_none()
                && st.http.is_none()
                && (dns_port(resp_port, Transport4::Tcp)
                    || (v.is_orig && DnsAnalyzer::looks_like_dns(payload, true)))
            {
                st.dns = Some(Box::default());
            }
            if st.http.is_none()
                && st.dns.is_none()
                && (http_port(resp_port) || HttpAnalyzer::looks_like_http(payload, v.is_orig))
            {
                st.http = Some(Box::default());
            }
            tcp_evidence(st, v.is_orig, resp_port, payload, stats);
        }
        _ => {}
    }
}

fn confirm(st: &mut AppState, name: &str, stats: &Stats) {
    st.confirm(name);
    Stats::inc(&stats.services_detected);
    st.detect.done = true;
}

/// UDP protocols recognised from one datagram on their port.
fn udp_service(orig_p: u16, resp_p: u16, p: &[u8]) -> Option<&'static str> {
    // Most datagrams are on none of these ports: one test each side turns them away.
    let known = |port: u16| matches!(port, 123 | 67 | 68 | 47808 | 20000 | 44818 | 2222);
    if !known(orig_p) && !known(resp_p) {
        return None;
    }
    let on = |port: u16| orig_p == port || resp_p == port;
    if on(123) && p.len() >= 48 && matches!((p[0] >> 3) & 7, 1..=4) && (p[0] & 7) != 0 {
        return Some("ntp");
    }
    if (on(67) || on(68))
        && p.len() >= 240
        && matches!(p[0], 1 | 2)
        && p[236..240] == [0x63, 0x82, 0x53, 0x63]
    {
        return Some("dhcp");
    }
    if on(47808)
        && p.len() >= 4
        && p[0] == 0x81
        && usize::from(u16::from_be_bytes([p[2], p[3]])) == p.len()
    {
        return Some("bacnet");
    }
    if on(20000) && p.len() >= 10 && p[0] == 0x05 && p[1] == 0x64 {
        return Some("dnp3");
    }
    if (on(44818) || on(2222)) && enip_header(p) {
        return Some("enip");
    }
    None
}

/// An EtherNet/IP encapsulation header with a known command and a consistent length.
fn enip_header(p: &[u8]) -> bool {
    if p.len() < 24 {
        return false;
    }
    let cmd = u16::from_le_bytes([p[0], p[1]]);
    let len = usize::from(u16::from_le_bytes([p[2], p[3]]));
    matches!(
        cmd,
        0x0000 | 0x0004 | 0x0063 | 0x0064 | 0x0065 | 0x0066 | 0x006f | 0x0070 | 0x0072 | 0x0073
    ) && len + 24 == p.len()
}

fn starts_with_ci(p: &[u8], prefix: &[u8]) -> bool {
    p.len() >= prefix.len() && p[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// TCP evidence: industrial protocols on their ports from one segment, the others from a
/// client pattern and a server pattern.
fn tcp_evidence(st: &mut AppState, is_orig: bool, resp_p: u16, p: &[u8], stats: &Stats) {
    use seen::*;
    if resp_p == 502 && p.len() >= 8 {
        // MBAP: protocol id 0 and a length that covers the rest of the frame.
        let len = usize::from(u16::from_be_bytes([p[4], p[5]]));
        if p[2] == 0 && p[3] == 0 && len >= 2 && len + 6 <= p.len() + 256 && len <= 254 {
            return confirm(st, "modbus", stats);
        }
    }
    if resp_p == 20000 && p.len() >= 10 && p[0] == 0x05 && p[1] == 0x64 {
        return confirm(st, "dnp3", stats);
    }
    if resp_p == 102 && p.len() >= 8 && p[0] == 3 && p[1] == 0 {
        // TPKT, COTP data (0xf0) carrying S7 (protocol id 0x32) or the COTP connect request.
        let cotp_len = usize::from(p[4]);
        if p.get(5) == Some(&0xf0) && p.get(5 + cotp_len) == Some(&0x32) {
            return confirm(st, "s7comm", stats);
        }
    }
    if resp_p == 44818 && enip_header(p) {
        return confirm(st, "enip", stats);
    }

    let d = &mut st.detect;
    let before = d.seen;
    let tls_record = p.len() >= 6 && matches!(p[0], 0x14..=0x17) && p[1] == 3 && p[2] <= 4;
    if is_orig {
        if tls_record && p[0] == 0x16 && p[5] == 1 {
            d.seen |= TLS_CLIENT;
        } else if p.len() >= 3 && p[2] == 1 && p[0] & 0x80 != 0 {
            // SSLv2-framed ClientHello.
            d.seen |= TLS_CLIENT;
        }
        if p.starts_with(b"SSH-") {
            d.seen |= SSH_CLIENT;
        }
        let line = p.trim_ascii_start();
        // The client commands by their first letter: at most two comparisons per segment.
        match line.first().map(u8::to_ascii_uppercase) {
            Some(b'U') if starts_with_ci(line, b"USER ") => d.seen |= FTP_USER | POP3_CMD,
            Some(b'E' | b'H') if starts_with_ci(line, b"EHLO") || starts_with_ci(line, b"HELO") => {
                d.seen |= SMTP_HELO;
            }
            Some(b'A') if starts_with_ci(line, b"APOP ") || starts_with_ci(line, b"AUTH ") => {
                d.seen |= POP3_CMD;
            }
            Some(b'C') if starts_with_ci(line, b"CAPA") => d.seen |= POP3_CMD,
            _ => {}
        }
        if let Some(sp) = memchr::memchr(b' ', line) {
            let cmd = &line[sp + 1..];
            let imap = match cmd.first().map(u8::to_ascii_uppercase) {
                Some(b'C') => starts_with_ci(cmd, b"CAPABILITY"),
                Some(b'L') => starts_with_ci(cmd, b"LOGIN "),
                Some(b'S') => starts_with_ci(cmd, b"STARTTLS"),
                _ => false,
            };
            if imap {
                d.seen |= IMAP_CMD;
            }
        }
    } else {
        if tls_record {
            d.seen |= TLS_SERVER;
        }
        match p.first() {
            Some(b'S') if p.starts_with(b"SSH-") => d.seen |= SSH_SERVER,
            Some(b'2') if p.len() >= 4 && &p[..3] == b"220" && !p[3].is_ascii_digit() => {
                d.seen |= GREETING_220;
            }
            Some(b'+' | b'-') if p.starts_with(b"+OK") || p.starts_with(b"-ERR") => {
                d.seen |= POP3_OK;
            }
            Some(b'*') if p.starts_with(b"* OK") => d.seen |= IMAP_OK,
            _ => {}
        }
    }
    if d.seen == before {
        // Nothing new: whatever was seen before confirmed nothing then.
        return;
    }
    let s = d.seen;
    let both = |a: u16, b: u16| s & a != 0 && s & b != 0;
    if both(TLS_CLIENT, TLS_SERVER) {
        confirm(st, "ssl", stats);
    } else if both(SSH_CLIENT, SSH_SERVER) {
        confirm(st, "ssh", stats);
    } else if both(GREETING_220, FTP_USER) {
        confirm(st, "ftp", stats);
    } else if both(GREETING_220, SMTP_HELO) {
        confirm(st, "smtp", stats);
    } else if both(POP3_OK, POP3_CMD) {
        confirm(st, "pop3", stats);
    } else if both(IMAP_OK, IMAP_CMD) {
        confirm(st, "imap", stats);
    }
}

/// Most FTP data connections announced and not yet seen.
const MAX_EXPECTED: usize = 256;
/// How long an announced data connection stays expected (Zeek's default, 5 minutes).
const EXPECT_SECS: i64 = 300;

/// Data connections announced on FTP control connections (PORT/EPRT, 227/229 replies), so
/// that the connection that follows gets `ftp-data`, as Zeek's expected connections do.
#[derive(Debug, Default)]
pub struct FtpExpectations {
    /// (originator, responder, responder port, deadline).
    pending: Vec<(IpAddr, IpAddr, u16, crate::ts::Ts)>,
}

impl FtpExpectations {
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    fn expect(&mut self, orig: IpAddr, resp: IpAddr, port: u16, now: crate::ts::Ts) {
        self.pending.retain(|e| e.3 > now);
        if self.pending.len() >= MAX_EXPECTED {
            self.pending.remove(0);
        }
        self.pending.push((
            orig,
            resp,
            port,
            now.plus(crate::ts::Span::from_secs(EXPECT_SECS)),
        ));
    }

    /// Whether a new connection is an announced data connection (consumes the expectation).
    pub fn take(&mut self, v: &PacketView<'_, '_>) -> bool {
        let now = v.ts;
        match self
            .pending
            .iter()
            .position(|e| e.3 > now && e.0 == v.orig.0 && e.1 == v.resp.0 && e.2 == v.resp.1)
        {
            Some(i) => {
                self.pending.remove(i);
                true
            }
            None => false,
        }
    }

    /// Reads a control-connection segment for data-channel announcements.
    pub fn scan(&mut self, v: &PacketView<'_, '_>) {
        let (client, server) = (v.orig.0, v.resp.0);
        for line in v.payload().split(|&b| b == b'\n') {
            let line = line.trim_ascii();
            if v.is_orig {
                if starts_with_ci(line, b"PORT ") {
                    if let Some((ip, port)) = parse_port_tuple(&line[5..]) {
                        self.expect(server, IpAddr::V4(ip), port, v.ts);
                    }
                } else if starts_with_ci(line, b"EPRT ") {
                    if let Some((ip, port)) = parse_eprt(&line[5..]) {
                        self.expect(server, ip, port, v.ts);
                    }
                }
            } else if line.starts_with(b"227") {
                let args = &line[3..];
                let from = args.iter().position(|&b| b == b'(').map_or(0, |i| i + 1);
                if let Some((ip, port)) = parse_port_tuple(&args[from..]) {
                    // Zeek trusts the announced address unless it is unspecified.
                    let ip = if ip.is_unspecified() {
                        server
                    } else {
                        IpAddr::V4(ip)
                    };
                    self.expect(client, ip, port, v.ts);
                }
            } else if line.starts_with(b"229") {
                if let Some(port) = parse_epsv(line) {
                    self.expect(client, server, port, v.ts);
                }
            }
        }
    }
}

/// `h1,h2,h3,h4,p1,p2` (trailing text ignored).
fn parse_port_tuple(s: &[u8]) -> Option<(std::net::Ipv4Addr, u16)> {
    let s = std::str::from_utf8(s).ok()?;
    let s = s.trim_start_matches(|c: char| !c.is_ascii_digit());
    let end = s
        .find(|c: char| !(c.is_ascii_digit() || c == ','))
        .unwrap_or(s.len());
    let n: Vec<u8> = s[..end]
        .split(',')
        .map(|x| x.parse::<u8>())
        .collect::<Result<_, _>>()
        .ok()?;
    if n.len() != 6 {
        return None;
    }
    Some((
        std::net::Ipv4Addr::new(n[0], n[1], n[2], n[3]),
        u16::from(n[4]) << 8 | u16::from(n[5]),
    ))
}

/// `|af|addr|port|` (RFC 2428).
fn parse_eprt(s: &[u8]) -> Option<(IpAddr, u16)> {
    let s = std::str::from_utf8(s).ok()?.trim();
    let d = s.chars().next()?;
    let parts: Vec<&str> = s.split(d).collect();
    if parts.len() < 5 {
        return None;
    }
    Some((parts[2].parse().ok()?, parts[3].parse().ok()?))
}

/// `229 Entering Extended Passive Mode (|||port|)`.
fn parse_epsv(line: &[u8]) -> Option<u16> {
    let s = std::str::from_utf8(line).ok()?;
    let open = s.find('(')?;
    let inner = &s[open + 1..s[open..].find(')')? + open];
    let d = inner.chars().next()?;
    inner.split(d).nth(3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ftp_bit_names_ftp() {
        assert_eq!(
            crate::flow::SERVICE_NAMES[FTP_BIT.trailing_zeros() as usize],
            "ftp"
        );
    }

    #[test]
    fn data_channel_announcements_parse() {
        assert_eq!(
            parse_port_tuple(b"192,168,1,2,7,138"),
            Some((std::net::Ipv4Addr::new(192, 168, 1, 2), 1930))
        );
        assert_eq!(
            parse_port_tuple(b"Entering Passive Mode (10,0,0,1,4,1)."),
            Some((std::net::Ipv4Addr::new(10, 0, 0, 1), 1025))
        );
        assert_eq!(parse_port_tuple(b"1,2,3"), None);
        assert_eq!(parse_port_tuple(b"300,1,1,1,1,1"), None);
        assert_eq!(
            parse_eprt(b"|2|2001:db8::1|5282|"),
            Some(("2001:db8::1".parse().unwrap(), 5282))
        );
        assert_eq!(parse_eprt(b"|2|junk|5282|"), None);
        assert_eq!(
            parse_epsv(b"229 Entering Extended Passive Mode (|||57086|)"),
            Some(57086)
        );
        assert_eq!(parse_epsv(b"229 nonsense ("), None);
    }
}

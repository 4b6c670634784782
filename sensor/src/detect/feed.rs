//! The analyzers' transactions as the detector's inputs: the HTTP analyzer's
//! [`HttpTransaction`]s (through [`HttpTap`], an observer lent for one packet) and the DNS
//! analyzer's parsed messages ([`dns_message`]). The detector has no protocol parsers of its
//! own for HTTP and DNS; the analyzers' bounds (header block and body sample sizes) apply.

use crate::analyzers::dns::wire::Parsed;
use crate::analyzers::dns::{DnsAnalyzer, DnsConn};
use crate::analyzers::http::parser::Version;
use crate::analyzers::http::{
    HttpAnalyzer, HttpConn, HttpConnRef, HttpObserver, HttpTransaction, Verdict,
};
use crate::analyzers::{Record, RecordSink};
use crate::flow::PacketView;

use super::buffers::{DnsMessage, HttpRequest, HttpResponse};
use super::rule::AppProto;
use super::Detector;

/// Gives the HTTP analyzer the connections Suricata reads as HTTP and Zeek does not: picked
/// up mid-stream (with `stream.midstream`), or never attached by Zeek's port and content
/// rules. They are parsed for the detector only, oriented by the detector's client.
pub fn attach_http(http: &mut Option<Box<HttpConn>>, v: &PacketView<'_, '_>, det: &Detector) {
    let Some((client, app)) = det.flow_of(v) else {
        return;
    };
    if v.partial && !det.midstream() {
        return;
    }
    match http {
        Some(h) if v.partial && !h.is_observe_only() => h.observe_only(client),
        Some(_) => {}
        None if app == Some(AppProto::Http) => {
            let mut h = Box::<HttpConn>::default();
            h.observe_only(client);
            *http = Some(h);
        }
        None => {}
    }
}

/// One packet through the HTTP analyzer, its completed messages through the detector.
pub fn http_packet(
    http: &mut HttpAnalyzer,
    conn: &mut HttpConn,
    v: &PacketView<'_, '_>,
    out: &mut dyn RecordSink,
    det: Option<&mut Detector>,
) -> Verdict {
    let Some(det) = det else {
        return http.packet(conn, v, out);
    };
    let mut tap = HttpTap {
        det,
        v,
        alerts: Vec::new(),
    };
    let verdict = http.packet_observed(conn, v, out, Some(&mut tap));
    for r in tap.alerts {
        out.record(r);
    }
    verdict
}

/// One packet through the DNS analyzer, its messages through the detector.
pub fn dns_packet(
    dns: &mut DnsAnalyzer,
    conn: &mut DnsConn,
    v: &PacketView<'_, '_>,
    out: &mut dyn RecordSink,
    det: Option<&mut Detector>,
) -> bool {
    let Some(det) = det else {
        return dns.packet(conn, v, out);
    };
    let mut alerts = Vec::new();
    let confirmed = dns.packet_observed(
        conn,
        v,
        out,
        Some(&mut |p: &Parsed| dns_message(det, v, p, &mut alerts)),
    );
    for r in alerts {
        out.record(r);
    }
    confirmed
}

/// Lent to the HTTP analyzer for one packet: what the packet completes is inspected with that
/// packet. Alerts collect in `alerts` (the analyzer holds the record sink meanwhile).
pub struct HttpTap<'d, 'v, 'a, 'b> {
    pub det: &'d mut Detector,
    pub v: &'v PacketView<'a, 'b>,
    pub alerts: Vec<Record>,
}

/// `Name: value` lines of an observed header block as (name, value) pairs. The block is cut
/// at a fixed size, so its last line may be partial: it counts as far as it goes.
fn header_pairs(block: &[u8]) -> Vec<(&[u8], &[u8])> {
    block
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .filter(|l| !l.is_empty())
        .map(|l| match l.windows(2).position(|w| w == b": ") {
            Some(p) => (&l[..p], &l[p + 2..]),
            None => (l, &l[l.len()..]),
        })
        .collect()
}

/// `HTTP/1.1`, or nothing for an unknown version (HTTP/0.9 requests carry none).
fn version_text(v: Option<Version>) -> Option<[u8; 8]> {
    let v = v.filter(|v| *v != Version::default())?;
    let t = v.text();
    Some([b'H', b'T', b'T', b'P', b'/', t[0], t[1], t[2]])
}

fn request_of<'t>(
    tx: &'t HttpTransaction,
    headers: &'t [(&'t [u8], &'t [u8])],
    version: &'t Option<[u8; 8]>,
) -> HttpRequest<'t> {
    HttpRequest {
        method: &tx.method,
        uri: &tx.uri,
        version: version.as_ref().map_or(&[][..], |v| &v[..]),
        headers,
        body: &tx.request_body,
    }
}

impl HttpTap<'_, '_, '_, '_> {
    fn request(&mut self, tx: &HttpTransaction, complete: bool) {
        let headers = header_pairs(&tx.request_headers);
        let version = version_text(tx.request_version);
        let req = request_of(tx, &headers, &version);
        self.det
            .on_http_request(self.v, &req, complete, &mut self.alerts);
    }

    fn response(&mut self, tx: &HttpTransaction, complete: bool) {
        let Some(code) = tx.status_code else {
            return;
        };
        let req_headers = header_pairs(&tx.request_headers);
        let req_version = version_text(tx.request_version);
        // A reply seen without its request (picked up mid-connection).
        let req = (!tx.method.is_empty()).then(|| request_of(tx, &req_headers, &req_version));
        let headers = header_pairs(&tx.response_headers);
        let version = version_text(tx.response_version);
        let status = code.to_string();
        let resp = HttpResponse {
            version: version.as_ref().map_or(&[][..], |v| &v[..]),
            status: status.as_bytes(),
            reason: tx.status_msg.as_deref().unwrap_or_default(),
            headers: &headers,
            body: &tx.response_body,
        };
        self.det
            .on_http_response(self.v, req.as_ref(), &resp, complete, &mut self.alerts);
    }
}

impl HttpObserver for HttpTap<'_, '_, '_, '_> {
    fn request_headers(&mut self, _conn: &HttpConnRef, tx: &HttpTransaction) {
        self.request(tx, false);
    }

    fn request_done(&mut self, _conn: &HttpConnRef, tx: &HttpTransaction) {
        self.request(tx, true);
    }

    fn response_headers(&mut self, _conn: &HttpConnRef, tx: &HttpTransaction) {
        self.response(tx, false);
    }

    fn transaction_done(&mut self, _conn: &HttpConnRef, tx: &HttpTransaction) {
        self.response(tx, true);
    }
}

/// Hands one DNS message the analyzer parsed to the detector.
pub fn dns_message(
    det: &mut Detector,
    v: &PacketView<'_, '_>,
    p: &Parsed,
    alerts: &mut Vec<Record>,
) {
    let queries: Vec<(&[u8], u16)> = p
        .queries
        .iter()
        .map(|(r, t)| (p.query_text.get(r.clone()).unwrap_or_default(), *t))
        .collect();
    let msg = DnsMessage {
        id: p.header.id,
        opcode: p.header.opcode,
        response: p.header.qr,
        queries: &queries,
    };
    det.on_dns(v, &msg, alerts);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_block_pairs() {
        let b = b"Host: a.example\r\nX-Empty: \r\nUser-Agent: curl/8\r\nCut: val";
        let h = header_pairs(b);
        assert_eq!(h.len(), 4);
        assert_eq!(h[0], (&b"Host"[..], &b"a.example"[..]));
        assert_eq!(h[1], (&b"X-Empty"[..], &b""[..]));
        assert_eq!(h[3], (&b"Cut"[..], &b"val"[..]));
        assert_eq!(
            version_text(Some(Version::V11)).as_ref().map(|v| &v[..]),
            Some(&b"HTTP/1.1"[..])
        );
        assert!(version_text(Some(Version::default())).is_none());
    }
}

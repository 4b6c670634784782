//! The analyzers' transactions as the detector's inputs: the HTTP analyzer's
//! [`HttpTransaction`]s and the DNS analyzer's parsed messages. On the packet thread they are
//! copied into the detection link ([`http_packet`], [`dns_packet`]); on the detection thread
//! they go through the detector ([`http_stage`], [`HttpTap`]). The detector has no protocol
//! parsers of its own for HTTP and DNS (it runs the HTTP analyzer itself only on connections
//! that analyzer does not read, [`attach_http`]); the analyzers' bounds (header block and body
//! sample sizes) apply.

use crate::analyzers::dns::wire::Parsed;
use crate::analyzers::dns::{DnsAnalyzer, DnsConn};
use crate::analyzers::http::parser::Version;
use crate::analyzers::http::{
    HttpAnalyzer, HttpConn, HttpConnRef, HttpObserver, HttpTransaction, Verdict,
};
use crate::analyzers::{Record, RecordSink};
use crate::flow::PacketView;

use super::buffers::{HttpRequest, HttpResponse};
use super::rule::AppProto;
use super::stage::{DetectLink, HttpStage};
use super::Detector;

/// Parses HTTP for the detector on the connections Suricata reads as HTTP and Zeek does not:
/// picked up mid-stream (with `stream.midstream`), or never attached by Zeek's port and content
/// rules. Those are parsed here (oriented by the detector's client) and inspected as they
/// complete. `analyzer` says whether the HTTP analyzer keeps a state for the connection; the
/// return value whether the detector inspects what that analyzer parses from this packet.
pub fn attach_http(
    det: &mut Detector,
    http: &mut HttpAnalyzer,
    v: &PacketView<'_, '_>,
    analyzer: bool,
    alerts: &mut Vec<Record>,
) -> bool {
    let Some((client, app)) = det.flow_of(v) else {
        return analyzer;
    };
    if v.partial && !det.midstream() {
        return analyzer;
    }
    let mut conn = match det.take_own_http(v) {
        Some(c) => c,
        // Zeek ignores a connection not seen from its handshake: the detector reads it.
        None if analyzer && v.partial => observed(client),
        None if analyzer => return true,
        None if app == Some(AppProto::Http) => observed(client),
        None => return false,
    };
    let mut tap = HttpTap {
        det,
        v,
        alerts: std::mem::take(alerts),
    };
    // Observe-only connections write nothing.
    let mut nothing: Vec<Record> = Vec::new();
    http.packet_observed(&mut conn, v, &mut nothing, Some(&mut tap));
    *alerts = tap.alerts;
    det.put_own_http(v, conn);
    false
}

fn observed(client: (std::net::IpAddr, u16)) -> Box<HttpConn> {
    let mut h = Box::<HttpConn>::default();
    h.observe_only(client);
    h
}

/// One packet through the HTTP analyzer; with a detection link, the stages of transactions it
/// completes are handed over.
pub fn http_packet(
    http: &mut HttpAnalyzer,
    conn: &mut HttpConn,
    v: &PacketView<'_, '_>,
    out: &mut dyn RecordSink,
    link: Option<&mut DetectLink>,
) -> Verdict {
    let Some(link) = link else {
        return http.packet(conn, v, out);
    };
    http.packet_observed(conn, v, out, Some(&mut ShipTap { link }))
}

/// One packet through the DNS analyzer; with a detection link, its messages are handed over.
pub fn dns_packet(
    dns: &mut DnsAnalyzer,
    conn: &mut DnsConn,
    v: &PacketView<'_, '_>,
    out: &mut dyn RecordSink,
    link: Option<&mut DetectLink>,
) -> bool {
    let Some(link) = link else {
        return dns.packet(conn, v, out);
    };
    dns.packet_observed(conn, v, out, Some(&mut |p: &Parsed| link.dns(p)))
}

/// Lent to the HTTP analyzer on the packet thread: copies each transaction stage for the
/// detection thread.
struct ShipTap<'l> {
    link: &'l mut DetectLink,
}

impl ShipTap<'_> {
    fn ship(&mut self, stage: HttpStage, tx: &HttpTransaction) {
        // A reply without a status line gives the detector nothing to inspect.
        let response = matches!(
            stage,
            HttpStage::ResponseHeaders | HttpStage::TransactionDone
        );
        if response && tx.status_code.is_none() {
            return;
        }
        self.link.http(stage, &TxView::of(tx));
    }
}

impl HttpObserver for ShipTap<'_> {
    fn request_headers(&mut self, _conn: &HttpConnRef, tx: &HttpTransaction) {
        self.ship(HttpStage::RequestHeaders, tx);
    }

    fn request_done(&mut self, _conn: &HttpConnRef, tx: &HttpTransaction) {
        self.ship(HttpStage::RequestDone, tx);
    }

    fn response_headers(&mut self, _conn: &HttpConnRef, tx: &HttpTransaction) {
        self.ship(HttpStage::ResponseHeaders, tx);
    }

    fn transaction_done(&mut self, _conn: &HttpConnRef, tx: &HttpTransaction) {
        self.ship(HttpStage::TransactionDone, tx);
    }
}

/// A transaction stage the HTTP analyzer parsed, through the detector (detection thread).
pub fn http_stage(
    det: &mut Detector,
    v: &PacketView<'_, '_>,
    stage: HttpStage,
    tx: &TxView<'_>,
    alerts: &mut Vec<Record>,
) {
    let mut tap = HttpTap {
        det,
        v,
        alerts: std::mem::take(alerts),
    };
    match stage {
        HttpStage::RequestHeaders => tap.request(tx, false),
        HttpStage::RequestDone => tap.request(tx, true),
        HttpStage::ResponseHeaders => tap.response(tx, false),
        HttpStage::TransactionDone => tap.response(tx, true),
    }
    *alerts = tap.alerts;
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

/// The parts of a transaction the detector reads: borrowed from the HTTP analyzer's
/// transaction, or from the copy a detection link carries ([`super::stage::HttpCopy`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct TxView<'t> {
    pub method: &'t [u8],
    pub uri: &'t [u8],
    pub request_version: Option<Version>,
    pub request_headers: &'t [u8],
    pub request_body: &'t [u8],
    pub status_code: Option<u16>,
    pub status_msg: Option<&'t [u8]>,
    pub response_version: Option<Version>,
    pub response_headers: &'t [u8],
    pub response_body: &'t [u8],
}

impl<'t> TxView<'t> {
    pub fn of(tx: &'t HttpTransaction) -> TxView<'t> {
        TxView {
            method: &tx.method,
            uri: &tx.uri,
            request_version: tx.request_version,
            request_headers: &tx.request_headers,
            request_body: &tx.request_body,
            status_code: tx.status_code,
            status_msg: tx.status_msg.as_deref(),
            response_version: tx.response_version,
            response_headers: &tx.response_headers,
            response_body: &tx.response_body,
        }
    }
}

fn request_of<'t>(
    tx: &TxView<'t>,
    headers: &'t [(&'t [u8], &'t [u8])],
    version: &'t Option<[u8; 8]>,
) -> HttpRequest<'t> {
    HttpRequest {
        method: tx.method,
        uri: tx.uri,
        version: version.as_ref().map_or(&[][..], |v| &v[..]),
        headers,
        body: tx.request_body,
    }
}

impl HttpTap<'_, '_, '_, '_> {
    fn request(&mut self, tx: &TxView<'_>, complete: bool) {
        let headers = header_pairs(tx.request_headers);
        let version = version_text(tx.request_version);
        let req = request_of(tx, &headers, &version);
        self.det
            .on_http_request(self.v, &req, complete, &mut self.alerts);
    }

    fn response(&mut self, tx: &TxView<'_>, complete: bool) {
        let Some(code) = tx.status_code else {
            return;
        };
        let req_headers = header_pairs(tx.request_headers);
        let req_version = version_text(tx.request_version);
        // A reply seen without its request (picked up mid-connection).
        let req = (!tx.method.is_empty()).then(|| request_of(tx, &req_headers, &req_version));
        let headers = header_pairs(tx.response_headers);
        let version = version_text(tx.response_version);
        let status = code.to_string();
        let resp = HttpResponse {
            version: version.as_ref().map_or(&[][..], |v| &v[..]),
            status: status.as_bytes(),
            reason: tx.status_msg.unwrap_or_default(),
            headers: &headers,
            body: tx.response_body,
        };
        self.det
            .on_http_response(self.v, req.as_ref(), &resp, complete, &mut self.alerts);
    }
}

impl HttpObserver for HttpTap<'_, '_, '_, '_> {
    fn request_headers(&mut self, _conn: &HttpConnRef, tx: &HttpTransaction) {
        self.request(&TxView::of(tx), false);
    }

    fn request_done(&mut self, _conn: &HttpConnRef, tx: &HttpTransaction) {
        self.request(&TxView::of(tx), true);
    }

    fn response_headers(&mut self, _conn: &HttpConnRef, tx: &HttpTransaction) {
        self.response(&TxView::of(tx), false);
    }

    fn transaction_done(&mut self, _conn: &HttpConnRef, tx: &HttpTransaction) {
        self.response(&TxView::of(tx), true);
    }
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

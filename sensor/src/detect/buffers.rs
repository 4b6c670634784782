//! What the engine inspects: the packet (payload, stream window, raw headers) and the
//! application-layer buffers handed over by the HTTP and DNS analyzers and the TLS parser.
//!
//! The analyzers describe a transaction with plain borrowed parts ([`HttpRequest`],
//! [`HttpResponse`], [`DnsMessage`]); the derived sticky buffers (`http.header`,
//! `http.header_names`, the normalized URI and host, ...) are built here, on demand, in
//! Suricata's layout.

use std::borrow::Cow;

use super::engine::{PayloadSel, Source};
use super::inspect::url_decode;
use super::rule::Buf;
use super::tls::TlsInfo;

/// One HTTP request as parsed by the HTTP analyzer.
#[derive(Clone, Copy, Debug, Default)]
pub struct HttpRequest<'a> {
    pub method: &'a [u8],
    /// The request target exactly as sent.
    pub uri: &'a [u8],
    /// `HTTP/1.1`.
    pub version: &'a [u8],
    /// Header fields in order: name and value without surrounding whitespace.
    pub headers: &'a [(&'a [u8], &'a [u8])],
    /// The body after de-chunking and decompression (as much as the analyzer keeps).
    pub body: &'a [u8],
}

/// One HTTP response as parsed by the HTTP analyzer.
#[derive(Clone, Copy, Debug, Default)]
pub struct HttpResponse<'a> {
    pub version: &'a [u8],
    /// The three status digits.
    pub status: &'a [u8],
    pub reason: &'a [u8],
    pub headers: &'a [(&'a [u8], &'a [u8])],
    pub body: &'a [u8],
}

/// One DNS message as parsed by the DNS analyzer.
#[derive(Clone, Copy, Debug, Default)]
pub struct DnsMessage<'a> {
    pub id: u16,
    pub opcode: u8,
    pub response: bool,
    /// Question names (dotted, without the root dot) and types.
    pub queries: &'a [(&'a [u8], u16)],
}

/// EtherNet/IP's encapsulation header.
pub const ENIP_HEADER: usize = 24;

/// A packet's own buffers.
#[derive(Default)]
pub struct PacketSource<'a> {
    pub payload: &'a [u8],
    /// In-order stream window and how much of it was inspected before (TCP only, when
    /// earlier data is kept).
    pub stream: Option<(&'a [u8], usize)>,
    /// Whether this packet's payload is new data (not a retransmission).
    pub payload_new: bool,
    pub ip_header: &'a [u8],
    pub icmp_header: &'a [u8],
}

impl Source for PacketSource<'_> {
    fn any(
        &self,
        buf: Buf,
        sel: PayloadSel,
        f: &mut dyn FnMut(&[u8], Option<usize>) -> bool,
    ) -> bool {
        match buf {
            Buf::Payload => {
                if sel == PayloadSel::Prefilter {
                    // The stream window ends with this packet's payload: one scan finds the
                    // patterns of both.
                    if let Some((s, seen)) = self.stream {
                        if self.payload_new && s.len() - seen == self.payload.len() {
                            return f(s, Some(seen));
                        }
                    }
                }
                if sel != PayloadSel::Stream && self.payload_new && f(self.payload, None) {
                    return true;
                }
                if sel != PayloadSel::Packet {
                    if let Some((s, seen)) = self.stream {
                        return f(s, Some(seen));
                    }
                    // Without earlier data the stream window is the packet itself.
                    if sel == PayloadSel::Stream && self.payload_new {
                        return f(self.payload, None);
                    }
                }
                false
            }
            Buf::IpHdr => f(self.ip_header, None),
            // The encapsulation header: command (little-endian) first, 24 bytes in all.
            Buf::EnipCommand if self.payload.len() >= ENIP_HEADER => {
                f(&[self.payload[1], self.payload[0]], None)
            }
            Buf::IcmpHdr => !self.icmp_header.is_empty() && f(self.icmp_header, None),
            _ => false,
        }
    }
}

fn header<'a>(hs: &[(&'a [u8], &'a [u8])], name: &str) -> Option<Cow<'a, [u8]>> {
    let mut found: Option<Cow<'a, [u8]>> = None;
    for (n, v) in hs {
        if n.eq_ignore_ascii_case(name.as_bytes()) {
            found = Some(match found {
                None => Cow::Borrowed(*v),
                // Repeated fields are joined, as HTTP allows and Suricata shows them.
                Some(prev) => {
                    let mut j = prev.into_owned();
                    j.extend_from_slice(b", ");
                    j.extend_from_slice(v);
                    Cow::Owned(j)
                }
            });
        }
    }
    found
}

fn header_block(hs: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut out = Vec::with_capacity(hs.iter().map(|(n, v)| n.len() + v.len() + 4).sum());
    for (n, v) in hs {
        out.extend_from_slice(n);
        out.extend_from_slice(b": ");
        out.extend_from_slice(v);
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn header_names(hs: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + hs.iter().map(|(n, _)| n.len() + 2).sum::<usize>());
    out.extend_from_slice(b"\r\n");
    for (n, _) in hs {
        out.extend_from_slice(n);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// The normalized URI: the path and query of an absolute form, percent-decoded, with dot
/// segments removed (what the http.uri buffer shows).
pub fn normalize_uri(raw: &[u8]) -> Vec<u8> {
    let mut u = raw;
    for scheme in [&b"http://"[..], &b"https://"[..]] {
        if u.len() > scheme.len() && u[..scheme.len()].eq_ignore_ascii_case(scheme) {
            let rest = &u[scheme.len()..];
            u = match rest.iter().position(|&b| b == b'/') {
                Some(p) => &rest[p..],
                None => b"/",
            };
        }
    }
    let (path, query) = match u.iter().position(|&b| b == b'?') {
        Some(p) => (&u[..p], Some(&u[p..])),
        None => (u, None),
    };
    // Most URIs have nothing to decode and no dot to resolve: they are their own normal form.
    if !path.iter().any(|&b| b == b'%' || b == b'.')
        && !query.is_some_and(|q| q.iter().any(|&b| b == b'%' || b == b'+'))
    {
        return u.to_vec();
    }
    let mut dec = Vec::with_capacity(path.len());
    // '+' is only a space in the query.
    let mut i = 0;
    while i < path.len() {
        if path[i] == b'%' {
            let h = |b: u8| (b as char).to_digit(16);
            if let (Some(a), Some(b)) = (
                path.get(i + 1).and_then(|&c| h(c)),
                path.get(i + 2).and_then(|&c| h(c)),
            ) {
                dec.push((a * 16 + b) as u8);
                i += 3;
                continue;
            }
        }
        dec.push(path[i]);
        i += 1;
    }
    let mut out = remove_dot_segments(&dec);
    if let Some(q) = query {
        out.extend_from_slice(&url_decode(q));
    }
    out
}

fn remove_dot_segments(p: &[u8]) -> Vec<u8> {
    if !p.starts_with(b"/") {
        return p.to_vec();
    }
    let mut segs: Vec<&[u8]> = Vec::new();
    let parts: Vec<&[u8]> = p[1..].split(|&b| b == b'/').collect();
    let last = parts.len() - 1;
    let mut trailing = false;
    for (i, s) in parts.iter().enumerate() {
        match *s {
            b"." => trailing = i == last,
            b".." => {
                segs.pop();
                trailing = i == last;
            }
            s => {
                segs.push(s);
                trailing = false;
            }
        }
    }
    let mut out = Vec::with_capacity(p.len());
    for s in &segs {
        out.push(b'/');
        out.extend_from_slice(s);
    }
    if out.is_empty() || trailing {
        out.push(b'/');
    }
    out
}

/// The normalized host: lower case, without port or trailing dot.
fn normalize_host(h: &[u8]) -> Vec<u8> {
    let mut h = h;
    if !h.starts_with(b"[") {
        if let Some(p) = h.iter().rposition(|&b| b == b':') {
            h = &h[..p];
        }
    }
    let h = h.strip_suffix(b".").unwrap_or(h);
    h.to_ascii_lowercase()
}

/// An HTTP transaction's buffers, seen from the request (`to_server`) or response side.
pub struct HttpSource<'a> {
    pub req: Option<&'a HttpRequest<'a>>,
    pub resp: Option<&'a HttpResponse<'a>>,
    pub to_server: bool,
    pub packet: PacketSource<'a>,
    /// The buffers built from the transaction, each built once per inspection however many
    /// rules ask for it.
    pub derived: Derived,
}

/// Built buffers of an [`HttpSource`] (normalized URI and host, request/response lines, the
/// header block and names): ET Open asks for the same one from many rule groups of a stage.
#[derive(Default)]
pub struct Derived([std::cell::OnceCell<Option<Vec<u8>>>; 7]);

impl Derived {
    fn slot(buf: Buf) -> Option<usize> {
        use Buf::*;
        Some(match buf {
            HttpUri => 0,
            HttpRequestLine => 1,
            HttpResponseLine => 2,
            HttpStart => 3,
            HttpHost => 4,
            HttpHeader | HttpHeaderRaw => 5,
            HttpHeaderNames => 6,
            _ => return None,
        })
    }
}

impl HttpSource<'_> {
    fn get(&self, buf: Buf) -> Option<Cow<'_, [u8]>> {
        match Derived::slot(buf) {
            Some(i) => self.derived.0[i]
                .get_or_init(|| self.build(buf).map(Cow::into_owned))
                .as_deref()
                .map(Cow::Borrowed),
            None => self.build(buf),
        }
    }

    fn build(&self, buf: Buf) -> Option<Cow<'_, [u8]>> {
        use Buf::*;
        let req = self.req;
        let resp = self.resp;
        // Buffers that exist on both sides follow the direction being inspected.
        let side_headers = if self.to_server {
            req.map(|r| r.headers)
        } else {
            resp.map(|r| r.headers)
        };
        let rh = |name: &str| req.and_then(|r| header(r.headers, name));
        let sh = |name: &str| side_headers.and_then(|h| header(h, name));
        Some(match buf {
            HttpUri => Cow::Owned(normalize_uri(req?.uri)),
            HttpUriRaw => Cow::Borrowed(req?.uri),
            HttpMethod => Cow::Borrowed(req?.method),
            HttpProtocol => Cow::Borrowed(if self.to_server {
                req?.version
            } else {
                resp?.version
            }),
            HttpRequestLine => {
                let r = req?;
                Cow::Owned([r.method, b" ", r.uri, b" ", r.version].concat())
            }
            HttpResponseLine => {
                let r = resp?;
                Cow::Owned([r.version, b" ", r.status, b" ", r.reason].concat())
            }
            HttpStart => {
                let (line, hs) = if self.to_server {
                    let r = req?;
                    ([r.method, b" ", r.uri, b" ", r.version].concat(), r.headers)
                } else {
                    let r = resp?;
                    (
                        [r.version, b" ", r.status, b" ", r.reason].concat(),
                        r.headers,
                    )
                };
                let mut out = line;
                out.extend_from_slice(b"\r\n");
                out.extend_from_slice(&header_block(hs));
                out.extend_from_slice(b"\r\n");
                Cow::Owned(out)
            }
            HttpHost => {
                let h = rh("host")?;
                Cow::Owned(normalize_host(&h))
            }
            HttpHostRaw => rh("host")?,
            HttpHeader | HttpHeaderRaw => Cow::Owned(header_block(side_headers?)),
            HttpHeaderNames => Cow::Owned(header_names(side_headers?)),
            HttpUserAgent => rh("user-agent")?,
            HttpCookie => {
                if self.to_server {
                    rh("cookie")?
                } else {
                    sh("set-cookie")?
                }
            }
            HttpReferer => rh("referer")?,
            HttpContentType => sh("content-type")?,
            HttpContentLen => sh("content-length")?,
            HttpAccept => rh("accept")?,
            HttpAcceptEnc => rh("accept-encoding")?,
            HttpAcceptLang => rh("accept-language")?,
            HttpConnection => sh("connection")?,
            HttpLocation => resp.and_then(|r| header(r.headers, "location"))?,
            HttpServer => resp.and_then(|r| header(r.headers, "server"))?,
            HttpRequestBody => {
                let b = req?.body;
                if b.is_empty() {
                    return None;
                }
                Cow::Borrowed(b)
            }
            HttpResponseBody => {
                let b = resp?.body;
                if b.is_empty() {
                    return None;
                }
                Cow::Borrowed(b)
            }
            FileData => {
                let b = if self.to_server {
                    req?.body
                } else {
                    resp?.body
                };
                if b.is_empty() {
                    return None;
                }
                Cow::Borrowed(b)
            }
            HttpStatCode => Cow::Borrowed(resp?.status),
            HttpStatMsg => Cow::Borrowed(resp?.reason),
            _ => return None,
        })
    }
}

impl Source for HttpSource<'_> {
    fn any(
        &self,
        buf: Buf,
        sel: PayloadSel,
        f: &mut dyn FnMut(&[u8], Option<usize>) -> bool,
    ) -> bool {
        match buf {
            Buf::Payload | Buf::IpHdr | Buf::IcmpHdr => self.packet.any(buf, sel, f),
            Buf::HttpRequestHeader | Buf::HttpResponseHeader => {
                let hs = if buf == Buf::HttpRequestHeader {
                    self.req.map(|r| r.headers)
                } else {
                    self.resp.map(|r| r.headers)
                };
                let mut line = Vec::new();
                hs.unwrap_or(&[]).iter().any(|(n, v)| {
                    line.clear();
                    line.extend_from_slice(n);
                    line.extend_from_slice(b": ");
                    line.extend_from_slice(v);
                    f(&line, None)
                })
            }
            b => match self.get(b) {
                Some(d) => f(&d, None),
                None => false,
            },
        }
    }
}

pub struct DnsSource<'a> {
    pub msg: &'a DnsMessage<'a>,
    pub packet: PacketSource<'a>,
}

impl Source for DnsSource<'_> {
    fn any(
        &self,
        buf: Buf,
        sel: PayloadSel,
        f: &mut dyn FnMut(&[u8], Option<usize>) -> bool,
    ) -> bool {
        match buf {
            Buf::DnsQuery => self.msg.queries.iter().any(|(q, _)| f(q, None)),
            Buf::DnsOpcode => f(&[self.msg.opcode], None),
            _ => self.packet.any(buf, sel, f),
        }
    }
}

pub struct TlsSource<'a> {
    pub info: &'a TlsInfo,
    pub packet: PacketSource<'a>,
}

impl Source for TlsSource<'_> {
    fn any(
        &self,
        buf: Buf,
        sel: PayloadSel,
        f: &mut dyn FnMut(&[u8], Option<usize>) -> bool,
    ) -> bool {
        let i = self.info;
        let s = |o: &Option<String>| o.as_ref().map(|s| s.as_bytes().to_vec());
        let one = match buf {
            Buf::TlsSni => i.sni.clone(),
            Buf::TlsCertSubject => s(&i.subject),
            Buf::TlsCertIssuer => s(&i.issuer),
            Buf::TlsCertSerial => s(&i.serial),
            Buf::TlsCertFingerprint => s(&i.fingerprint),
            Buf::Ja3Hash => s(&i.ja3_hash),
            Buf::Ja3String => s(&i.ja3),
            Buf::Ja3sHash => s(&i.ja3s_hash),
            Buf::Ja3sString => s(&i.ja3s),
            Buf::TlsCerts => return i.certs.iter().any(|c| f(c, None)),
            _ => return self.packet.any(buf, sel, f),
        };
        match one {
            Some(d) => f(&d, None),
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_normalization() {
        assert_eq!(
            normalize_uri(b"/a/./b/../c%2ehtml?x=%41+b"),
            b"/a/c.html?x=A b"
        );
        assert_eq!(normalize_uri(b"http://Host:80/x/y"), b"/x/y");
        assert_eq!(normalize_uri(b"/a/.."), b"/");
        // Nothing to decode or resolve: unchanged (the shortcut), as the full path gives.
        for plain in [
            &b"/a//b/"[..],
            b"/",
            b"",
            b"?x=1",
            b"*",
            b"/api/v1/tags?id=7&z",
        ] {
            assert_eq!(normalize_uri(plain), plain);
        }
        assert_eq!(normalize_uri(b"http://h/a/b?q"), b"/a/b?q");
        assert_eq!(normalize_uri(b"/a.b/c"), b"/a.b/c");
        assert_eq!(normalize_uri(b"/a?b+c"), b"/a?b c");
        assert_eq!(normalize_host(b"WWW.Example.com:8080"), b"www.example.com");
    }

    #[test]
    fn http_buffers() {
        let hs: &[(&[u8], &[u8])] = &[
            (b"Host", b"Example.com"),
            (b"User-Agent", b"Mozilla"),
            (b"Cookie", b"a=1"),
        ];
        let req = HttpRequest {
            method: b"GET",
            uri: b"/x",
            version: b"HTTP/1.1",
            headers: hs,
            body: b"",
        };
        let src = HttpSource {
            req: Some(&req),
            resp: None,
            to_server: true,
            packet: PacketSource::default(),
            derived: Default::default(),
        };
        let get = |b: Buf| src.get(b).map(|c| c.into_owned());
        assert_eq!(get(Buf::HttpHost).unwrap(), b"example.com");
        assert_eq!(get(Buf::HttpUserAgent).unwrap(), b"Mozilla");
        assert_eq!(
            get(Buf::HttpHeaderNames).unwrap(),
            b"\r\nHost\r\nUser-Agent\r\nCookie\r\n\r\n"
        );
        assert_eq!(get(Buf::HttpRequestLine).unwrap(), b"GET /x HTTP/1.1");
        assert!(get(Buf::HttpRequestBody).is_none());
        assert!(get(Buf::HttpStatCode).is_none());
    }
}

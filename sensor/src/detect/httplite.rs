//! A minimal HTTP/1 reader so that http.* rules work before the HTTP analyzer hands its
//! transactions over ([`super::Detector::set_external_app_layer`] switches it off). It reads
//! request/status lines, header fields and bodies framed by Content-Length or chunked
//! encoding, from the in-order stream; no decompression. Bounded: header blocks above
//! [`MAX_HEAD`] end parsing of that direction, bodies are kept up to [`MAX_BODY`].

use std::collections::VecDeque;

use super::buffers::{HttpRequest, HttpResponse};

const MAX_HEAD: usize = 16 * 1024;
const MAX_BODY: usize = 64 * 1024;

/// An HTTP message with owned parts.
#[derive(Debug, Default)]
pub struct Msg {
    /// Method, URI, version (request) or version, status, reason (response).
    pub line: [Vec<u8>; 3],
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    pub body: Vec<u8>,
}

/// Borrowed views of a [`Msg`], in the shape the detector's hooks take.
pub struct Parts<'a> {
    m: &'a Msg,
    headers: Vec<(&'a [u8], &'a [u8])>,
}

impl Msg {
    pub fn parts(&self) -> Parts<'_> {
        Parts {
            m: self,
            headers: self.headers.iter().map(|(n, v)| (&n[..], &v[..])).collect(),
        }
    }
}

impl<'a> Parts<'a> {
    pub fn as_request(&self) -> HttpRequest<'_> {
        HttpRequest {
            method: &self.m.line[0],
            uri: &self.m.line[1],
            version: &self.m.line[2],
            headers: &self.headers,
            body: &self.m.body,
        }
    }
    pub fn as_response(&self) -> HttpResponse<'_> {
        HttpResponse {
            version: &self.m.line[0],
            status: &self.m.line[1],
            reason: &self.m.line[2],
            headers: &self.headers,
            body: &self.m.body,
        }
    }
}

pub enum Event {
    Request(Msg),
    Response(Msg),
}

#[derive(Debug, Default)]
enum Body {
    #[default]
    None,
    Length(usize),
    /// Chunked: bytes left in the current chunk (None = expecting a size line).
    Chunked(Option<usize>),
}

#[derive(Debug, Default)]
struct Dir {
    buf: Vec<u8>,
    msg: Option<Msg>,
    body: Body,
    stopped: bool,
}

/// Both directions of one connection.
#[derive(Debug, Default)]
pub struct HttpLite {
    dirs: [Dir; 2],
    /// Requests waiting for their response.
    pub pending: VecDeque<Msg>,
}

fn trim(b: &[u8]) -> &[u8] {
    let s = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let e = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(s, |e| e + 1);
    &b[s..e.max(s)]
}

fn parse_head(head: &[u8], request: bool) -> Option<(Msg, Body)> {
    let mut lines = head
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let first = trim(lines.next()?);
    // Runs of blanks separate the parts (servers accept `POST  /  HTTP/1.0`).
    let toks: Vec<&[u8]> = first
        .split(|&b| b == b' ' || b == b'\t')
        .filter(|t| !t.is_empty())
        .collect();
    let (a, b, c) = if request {
        let (Some(m), Some(v)) = (toks.first(), toks.last()) else {
            return None;
        };
        if toks.len() < 3 || !v.starts_with(b"HTTP/") {
            return None;
        }
        // The URI is everything between method and version, as sent.
        let start = m.len();
        let end = first.len() - v.len();
        (m.to_vec(), trim(&first[start..end]).to_vec(), v.to_vec())
    } else {
        let v = toks.first()?;
        if !v.starts_with(b"HTTP/") {
            return None;
        }
        let code = toks.get(1).copied().unwrap_or(b"");
        let rest_at = first
            .windows(code.len().max(1))
            .position(|w| w == code)
            .map_or(first.len(), |p| p + code.len());
        (
            v.to_vec(),
            code.to_vec(),
            trim(&first[rest_at.min(first.len())..]).to_vec(),
        )
    };
    let mut m = Msg {
        line: [a, b, c],
        ..Msg::default()
    };
    for l in lines {
        if l.is_empty() {
            continue;
        }
        if let Some(p) = l.iter().position(|&b| b == b':') {
            m.headers
                .push((trim(&l[..p]).to_vec(), trim(&l[p + 1..]).to_vec()));
        }
    }
    let hv = |name: &[u8]| {
        m.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let body = if hv(b"transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().windows(7).any(|w| w == b"chunked"))
    {
        Body::Chunked(None)
    } else if let Some(n) = hv(b"content-length").and_then(|v| {
        std::str::from_utf8(&v)
            .ok()
            .and_then(|s| s.trim().parse::<usize>().ok())
    }) {
        Body::Length(n)
    } else {
        Body::None
    };
    Some((m, body))
}

impl HttpLite {
    /// Direction `d` closed (FIN/RST): a message cut short is finished as it stands.
    pub fn close(&mut self, d: usize) -> Vec<Event> {
        let st = &mut self.dirs[d];
        if st.stopped {
            return Vec::new();
        }
        let msg = match st.msg.take() {
            Some(m) => Some(m),
            None if !st.buf.is_empty() => {
                let head = std::mem::take(&mut st.buf);
                parse_head(trim(&head), d == 0).map(|(m, _)| m)
            }
            None => None,
        };
        st.stopped = true;
        st.buf = Vec::new();
        msg.map(|m| {
            vec![if d == 0 {
                Event::Request(m)
            } else {
                Event::Response(m)
            }]
        })
        .unwrap_or_default()
    }

    /// Feeds in-order bytes of direction `d` (0 = from the client); returns finished messages.
    pub fn feed(&mut self, d: usize, data: &[u8]) -> Vec<Event> {
        let mut out = Vec::new();
        let st = &mut self.dirs[d];
        if st.stopped {
            return out;
        }
        st.buf.extend_from_slice(data);
        loop {
            if st.msg.is_none() {
                let Some(end) = st.buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                    if st.buf.len() > MAX_HEAD {
                        st.stopped = true;
                        st.buf = Vec::new();
                    }
                    break;
                };
                let head = st.buf[..end].to_vec();
                st.buf.drain(..end + 4);
                // Stray line ends between messages.
                let head_trim = {
                    let s = head
                        .iter()
                        .position(|&b| b != b'\r' && b != b'\n')
                        .unwrap_or(head.len());
                    &head[s..]
                };
                match parse_head(head_trim, d == 0) {
                    Some((m, body)) => {
                        st.msg = Some(m);
                        st.body = body;
                    }
                    None => {
                        st.stopped = true;
                        st.buf = Vec::new();
                        break;
                    }
                }
            }
            // Body.
            let done = match &mut st.body {
                Body::None => true,
                Body::Length(n) => {
                    let take = (*n).min(st.buf.len());
                    if let Some(m) = st.msg.as_mut() {
                        let room = MAX_BODY.saturating_sub(m.body.len());
                        m.body.extend_from_slice(&st.buf[..take.min(room)]);
                    }
                    st.buf.drain(..take);
                    *n -= take;
                    *n == 0
                }
                Body::Chunked(state) => {
                    let mut finished = false;
                    loop {
                        match state {
                            None => {
                                let Some(e) = st.buf.windows(2).position(|w| w == b"\r\n") else {
                                    break;
                                };
                                let line = String::from_utf8_lossy(&st.buf[..e]).to_string();
                                let hex = line.split(';').next().unwrap_or("").trim().to_string();
                                st.buf.drain(..e + 2);
                                match usize::from_str_radix(&hex, 16) {
                                    Ok(0) => {
                                        // Last chunk; trailers end with an empty line.
                                        if st.buf.starts_with(b"\r\n") {
                                            st.buf.drain(..2);
                                        }
                                        finished = true;
                                        break;
                                    }
                                    Ok(n) => *state = Some(n + 2),
                                    Err(_) => {
                                        finished = true;
                                        break;
                                    }
                                }
                            }
                            Some(n) => {
                                let take = (*n).min(st.buf.len());
                                if take == 0 {
                                    break;
                                }
                                let data_part = take.min(n.saturating_sub(2));
                                if let Some(m) = st.msg.as_mut() {
                                    let room = MAX_BODY.saturating_sub(m.body.len());
                                    m.body.extend_from_slice(&st.buf[..data_part.min(room)]);
                                }
                                st.buf.drain(..take);
                                *n -= take;
                                if *n == 0 {
                                    *state = None;
                                } else if *n < 2 {
                                    // Part of the chunk's CRLF is still to come.
                                }
                            }
                        }
                    }
                    finished
                }
            };
            if !done {
                break;
            }
            if let Some(m) = st.msg.take() {
                out.push(if d == 0 {
                    Event::Request(m)
                } else {
                    Event::Response(m)
                });
            }
            st.body = Body::None;
            if st.buf.is_empty() {
                break;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_and_chunked_response() {
        let mut h = HttpLite::default();
        let ev = h.feed(
            0,
            b"GET /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nab",
        );
        assert!(ev.is_empty());
        let ev = h.feed(0, b"c");
        match &ev[..] {
            [Event::Request(m)] => {
                assert_eq!(m.line[1], b"/a");
                assert_eq!(m.body, b"abc");
            }
            _ => panic!(),
        }
        let ev = h.feed(1, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n");
        match &ev[..] {
            [Event::Response(m)] => {
                assert_eq!(m.line[1], b"200");
                assert_eq!(m.body, b"abcde");
            }
            _ => panic!(),
        }
    }

    #[test]
    fn garbage_stops() {
        let mut h = HttpLite::default();
        assert!(h.feed(0, b"\x16\x03\x01\r\n\r\n").is_empty());
        assert!(h.feed(0, b"GET / HTTP/1.1\r\n\r\n").is_empty());
    }
}

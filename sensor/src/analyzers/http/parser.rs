//! HTTP/1.x message parsing over the two reassembled byte streams of a connection.
//!
//! The parser follows Zeek's HTTP analyzer closely, because http.log must match what Zeek
//! logs for the same bytes (zeek-semantics §4):
//! - each direction is cut into lines (CR LF, lone LF and lone CR all end a line) until a
//!   message announces a body of known size, which is then taken verbatim ("plain delivery");
//! - request line: method = leading HTTP token, URI up to the whitespace before `HTTP/`,
//!   no version means HTTP/0.9 (then the whole server stream is the reply body);
//! - reply line: `HTTP/x.y NNN reason`; 1xx replies leave the request waiting for its final
//!   reply; 204/304/1xx and replies to HEAD have no body;
//! - bodies: chunked (HTTP/1.1 only), Content-Length, 206 Content-Range, until close
//!   (`Connection: close`, or gzip/deflate without a length), otherwise line by line until
//!   close, each line counted with two bytes of line end, as Zeek counts it;
//! - gzip/deflate bodies are counted after decoding;
//! - a content gap inside a body of known size is counted as body and skipped; anywhere else
//!   it ends the message and parsing of that direction;
//! - CONNECT answered by 200 and 101 upgrades end parsing (the tunnelled bytes are not HTTP).
//!
//! What a message means is reported through [`HttpEvents`]; the caller turns events into
//! http.log records. Everything is bounded: lines are cut at [`MAX_LINE`], headers per message
//! at [`MAX_HEADERS`], the queue of unanswered requests at [`MAX_UNANSWERED`]; oddities are
//! reported as weirds, never as panics.

use std::collections::VecDeque;

use super::body::{Decoder, Encoding};

/// Longest line kept; longer lines are cut (Zeek's `contentline_size_exceeded`).
pub const MAX_LINE: usize = 16 * 1024;
/// Headers per message that are interpreted; further ones are counted as weird and skipped.
pub const MAX_HEADERS: u32 = 256;
/// Requests waiting for their reply that are remembered (method only).
pub const MAX_UNANSWERED: usize = 1024;

/// An HTTP version; the default `0.0` means "not known" (as in Zeek).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Version {
    pub major: u8,
    pub minor: u8,
}

impl Version {
    pub const V09: Version = Version { major: 0, minor: 9 };
    pub const V11: Version = Version { major: 1, minor: 1 };

    /// `1.1`, as Zeek formats it (`%.1f`).
    pub fn text(self) -> [u8; 3] {
        [b'0' + self.major, b'.', b'0' + self.minor]
    }
}

/// What the parser found, in stream order.
pub trait HttpEvents {
    /// A request line: method, URI as sent, URI percent-decoded, version.
    fn request(&mut self, method: &[u8], raw_uri: &[u8], uri: &[u8], version: Version);
    /// A status line; `reason` is `None` when the line had none.
    fn reply(&mut self, version: Version, code: u16, reason: Option<&[u8]>);
    /// One header of the current request (`is_orig`) or reply message.
    fn header(&mut self, is_orig: bool, name: &[u8], value: &[u8]);
    /// The header block of the current message ended.
    fn headers_done(&mut self, is_orig: bool);
    /// The message ended inside its header block with this header pending: Zeek's analyzer
    /// drops it, a rule engine (as Suricata) still reads it.
    fn cut_header(&mut self, _is_orig: bool, _name: &[u8], _value: &[u8]) {}
    /// Decoded body bytes of the current message (a sample may be shorter than what is
    /// counted: decoded bodies are only sampled).
    fn body(&mut self, is_orig: bool, data: &[u8]);
    /// The current message ended (normally or interrupted); `body_len` as Zeek counts it.
    fn message_done(&mut self, is_orig: bool, body_len: u64);
    /// The bytes are HTTP (Zeek's analyzer confirmation).
    fn confirm(&mut self);
    /// The bytes are not HTTP (Zeek's analyzer violation).
    fn violation(&mut self);
    /// Something odd that does not stop parsing.
    fn weird(&mut self, what: &'static str);
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RequestState {
    Line,
    Message,
    Nothing,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ReplyState {
    Line,
    Message,
    Nothing,
    /// HTTP/0.9: everything the server sends is the body.
    Http09,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BodyExpect {
    NotExpected,
    Maybe,
    Expected,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Chunked {
    No,
    Announced,
    ExpectSize,
    ExpectData,
    ExpectDataCrlf,
    ExpectTrailer,
    Done,
}

/// Plain delivery "until the connection closes".
const UNTIL_CLOSE: u64 = u64::MAX;

/// Line cutting state of one direction.
#[derive(Debug, Default)]
struct Lines {
    buf: Vec<u8>,
    last: u8,
    /// Bytes to pass verbatim before cutting lines again.
    plain: u64,
    /// Nothing more of this direction is parsed (after a gap outside a body).
    skip: bool,
}

/// One HTTP message (Zeek's message plus its top-level entity).
#[derive(Debug)]
struct Message {
    is_orig: bool,
    expect_body: BodyExpect,
    in_header: bool,
    end_of_data: bool,
    finished: bool,
    /// The header being collected (continuation lines join it).
    header: Vec<u8>,
    headers: u32,
    content_length: Option<u64>,
    range_length: Option<u64>,
    chunked: Chunked,
    multipart: bool,
    encoding: Encoding,
    /// Boxed: decoders are large and encoded bodies rare, and every connection with HTTP
    /// holds two messages.
    decoder: Option<Box<Decoder>>,
    expect_data: u64,
    body_length: u64,
    /// Multipart bodies are cut into lines and end with the closing delimiter
    /// `--<boundary>--` (the boundary is kept, at most [`MAX_BOUNDARY`] bytes).
    boundary: Option<Vec<u8>>,
}

/// Longest multipart boundary kept (RFC 2046 allows 70 characters).
const MAX_BOUNDARY: usize = 256;

/// The header buffer of the message a new one replaces, emptied: one buffer per direction
/// serves every message of a connection.
fn reuse_header(old: Option<Message>) -> Vec<u8> {
    let mut header = old.map(|m| m.header).unwrap_or_default();
    header.clear();
    header
}

impl Message {
    fn new(is_orig: bool, expect_body: BodyExpect) -> Message {
        Message::with_header(is_orig, expect_body, Vec::new())
    }

    fn with_header(is_orig: bool, expect_body: BodyExpect, header: Vec<u8>) -> Message {
        Message {
            is_orig,
            expect_body,
            in_header: true,
            end_of_data: false,
            finished: false,
            header,
            headers: 0,
            content_length: None,
            range_length: None,
            chunked: Chunked::No,
            multipart: false,
            encoding: Encoding::Identity,
            decoder: None,
            expect_data: 0,
            body_length: 0,
            boundary: None,
        }
    }
}

/// Connection-wide facts that messages consult and headers change.
#[derive(Debug, Default)]
struct Flags {
    keep_alive: bool,
    connection_close: bool,
    connect_request: bool,
    upgrade_connection: bool,
    upgrade_protocol: bool,
    /// Parsing ended for good (CONNECT tunnel, upgrade, violation).
    stopped: bool,
    reply_code: u16,
    request_version: Version,
    reply_version: Version,
    request_ongoing: bool,
    reply_ongoing: bool,
    num_requests: u64,
}

impl Flags {
    fn set_version(&mut self, is_orig: bool, v: Version, ev: &mut impl HttpEvents) {
        let cur = if is_orig {
            &mut self.request_version
        } else {
            &mut self.reply_version
        };
        if *cur != Version::default() && *cur != v {
            ev.weird("HTTP_version_mismatch");
        }
        *cur = v;
        if v.major > 1 || (v.major == 1 && v.minor > 0) {
            self.keep_alive = true;
        }
    }
}

/// The HTTP parser of one connection: both directions.
#[derive(Debug)]
pub struct HttpParser {
    lines: [Lines; 2],
    request_state: RequestState,
    reply_state: ReplyState,
    request: Option<Message>,
    reply: Option<Message>,
    f: Flags,
    /// Requests waiting for a reply: whether each was HEAD (a reply to HEAD has no body).
    unanswered: VecDeque<bool>,
    scratch: Vec<u8>,
}

impl Default for HttpParser {
    fn default() -> Self {
        HttpParser::new()
    }
}

fn idx(is_orig: bool) -> usize {
    usize::from(!is_orig)
}

impl HttpParser {
    pub fn new() -> HttpParser {
        HttpParser {
            lines: Default::default(),
            request_state: RequestState::Line,
            reply_state: ReplyState::Line,
            request: None,
            reply: None,
            f: Flags::default(),
            unanswered: VecDeque::new(),
            scratch: Vec::new(),
        }
    }

    /// Heap bytes the parser holds (line and header buffers), for memory accounting.
    pub fn buffered(&self) -> usize {
        let msg = |m: &Option<Message>| m.as_ref().map_or(0, |m| m.header.capacity());
        self.lines.iter().map(|l| l.buf.capacity()).sum::<usize>()
            + msg(&self.request)
            + msg(&self.reply)
            + self.scratch.capacity()
    }

    /// True once nothing more will be parsed.
    pub fn stopped(&self) -> bool {
        self.f.stopped
    }

    /// Ends parsing for good (the analyzer was disabled); open messages end interrupted.
    pub fn stop(&mut self, ev: &mut impl HttpEvents) {
        self.made(true, true, ev);
        self.made(false, true, ev);
        self.f.stopped = true;
    }

    /// Next bytes of one direction's stream.
    pub fn data(&mut self, is_orig: bool, mut data: &[u8], ev: &mut impl HttpEvents) {
        let d = idx(is_orig);
        if self.f.stopped || self.lines[d].skip {
            return;
        }
        if !is_orig && self.reply_state == ReplyState::Http09 {
            self.http09_reply(data, ev);
            return;
        }
        while !data.is_empty() {
            if self.f.stopped || self.lines[d].skip {
                return;
            }
            let l = &mut self.lines[d];
            if l.last == b'\r' && data[0] == b'\n' {
                // The LF of a CR LF split across segments.
                l.last = b'\n';
                data = &data[1..];
                continue;
            }
            if l.plain > 0 {
                let n = (data.len() as u64).min(l.plain) as usize;
                l.last = 0;
                if l.plain != UNTIL_CLOSE {
                    l.plain -= n as u64;
                }
                self.plain(is_orig, &data[..n], ev);
                data = &data[n..];
                continue;
            }
            let eol = memchr::memchr2(b'\n', b'\r', data);
            let room = MAX_LINE - l.buf.len();
            match eol {
                Some(i) if i <= room => {
                    let consumed = if data[i] == b'\r' && data.get(i + 1) == Some(&b'\n') {
                        l.last = b'\n';
                        i + 2
                    } else {
                        l.last = data[i];
                        i + 1
                    };
                    if l.buf.is_empty() {
                        self.line(is_orig, &data[..i], consumed, ev);
                    } else {
                        let mut line = std::mem::take(&mut l.buf);
                        line.extend_from_slice(&data[..i]);
                        self.line(is_orig, &line, consumed, ev);
                        line.clear();
                        let l = &mut self.lines[d];
                        if l.buf.is_empty() {
                            l.buf = line;
                        }
                    }
                    data = &data[consumed..];
                }
                _ if data.len() <= room && eol.is_none() => {
                    l.buf.extend_from_slice(data);
                    l.last = data[data.len() - 1];
                    return;
                }
                _ => {
                    // The line outgrew the cap: it is cut here and the rest starts a new one.
                    ev.weird("contentline_size_exceeded");
                    let mut line = std::mem::take(&mut l.buf);
                    line.extend_from_slice(&data[..room]);
                    l.last = 0;
                    self.line(is_orig, &line, room, ev);
                    data = &data[room..];
                }
            }
        }
    }

    /// Bytes of one direction that will never be seen.
    pub fn gap(&mut self, is_orig: bool, len: u64, ev: &mut impl HttpEvents) {
        let d = idx(is_orig);
        if self.f.stopped || self.lines[d].skip {
            return;
        }
        let msg = if is_orig {
            self.request.as_mut()
        } else {
            self.reply.as_mut()
        };
        let skipped_in_body = match msg {
            Some(m) => message_gap(m, len, &mut self.lines[d], ev),
            None => false,
        };
        if skipped_in_body {
            self.after_message(is_orig, ev);
            return;
        }
        ev.weird("content_gap");
        if is_orig {
            // Whether a reply has a body can depend on the request: stop both.
            self.made(true, true, ev);
            self.made(false, true, ev);
        } else {
            self.made(false, true, ev);
        }
        self.lines[d].skip = true;
        self.lines[d].buf = Vec::new();
    }

    /// The sender closed its direction after all its bytes.
    pub fn eof(&mut self, is_orig: bool, ev: &mut impl HttpEvents) {
        let d = idx(is_orig);
        if !self.f.stopped && !self.lines[d].skip && !self.lines[d].buf.is_empty() {
            // A last line without its line end still counts as a line.
            self.data(is_orig, b"\n", ev);
        }
        self.made(is_orig, false, ev);
    }

    /// The connection was reset or is gone: open messages end interrupted.
    pub fn abort(&mut self, ev: &mut impl HttpEvents) {
        self.made(true, true, ev);
        self.made(false, true, ev);
    }

    fn http09_reply(&mut self, data: &[u8], ev: &mut impl HttpEvents) {
        if self.reply.is_none() {
            self.f.set_version(false, Version::V09, ev);
            if self.unanswered.pop_front().is_some() {
                ev.confirm();
            }
            // The server closes after the reply: the body runs until then.
            self.f.connection_close = true;
            self.f.reply_ongoing = true;
            ev.reply(Version::V09, 0, None);
            let mut m = Message::new(false, self.expect_reply_body());
            let d = idx(false);
            message_deliver(&mut m, b"", true, &mut self.lines[d], &mut self.f, ev);
            self.reply = Some(m);
            self.lines[d].plain = 0;
        }
        if let Some(m) = self.reply.as_mut() {
            if !m.end_of_data {
                deliver_body(m, data, false, ev);
            }
        }
    }

    fn plain(&mut self, is_orig: bool, data: &[u8], ev: &mut impl HttpEvents) {
        let d = idx(is_orig);
        let msg = if is_orig {
            self.request.as_mut()
        } else {
            self.reply.as_mut()
        };
        match msg {
            Some(m) => {
                message_deliver(m, data, false, &mut self.lines[d], &mut self.f, ev);
                self.after_message(is_orig, ev);
            }
            None => ev.weird(if is_orig {
                "unexpected_client_HTTP_data"
            } else {
                "unexpected_server_HTTP_data"
            }),
        }
    }

    /// A message that ended by itself ends its request or reply.
    fn after_message(&mut self, is_orig: bool, ev: &mut impl HttpEvents) {
        let finished = if is_orig {
            self.request.as_ref().is_some_and(|m| m.finished)
        } else {
            self.reply.as_ref().is_some_and(|m| m.finished)
        };
        if finished {
            self.made(is_orig, false, ev);
        }
    }

    /// One line; `raw_len` is how many stream bytes it took (line end included).
    fn line(&mut self, is_orig: bool, line: &[u8], raw_len: usize, ev: &mut impl HttpEvents) {
        let d = idx(is_orig);
        if is_orig {
            match self.request_state {
                RequestState::Line => self.request_line(line, ev),
                RequestState::Message => {
                    if let Some(m) = self.request.as_mut() {
                        message_line(m, line, raw_len, &mut self.lines[d], &mut self.f, ev);
                    }
                    self.after_message(true, ev);
                }
                RequestState::Nothing => {}
            }
        } else {
            match self.reply_state {
                ReplyState::Line => self.reply_line(line, ev),
                ReplyState::Message => {
                    if let Some(m) = self.reply.as_mut() {
                        message_line(m, line, raw_len, &mut self.lines[d], &mut self.f, ev);
                    }
                    if self.f.connect_request && line.is_empty() {
                        // CONNECT accepted: from here on the bytes belong to the tunnel.
                        self.f.stopped = true;
                        return;
                    }
                    self.after_message(false, ev);
                }
                ReplyState::Nothing | ReplyState::Http09 => {}
            }
        }
    }

    fn request_line(&mut self, line: &[u8], ev: &mut impl HttpEvents) {
        match parse_request_line(line, &mut self.f, &mut self.scratch, ev) {
            Some((method_len, uri_start, uri_end)) => {
                self.f.num_requests += 1;
                if !self.f.keep_alive && self.f.num_requests > 1 {
                    ev.weird("unexpected_multiple_HTTP_requests");
                }
                self.request_state = RequestState::Message;
                self.f.request_ongoing = true;
                let method = &line[..method_len];
                if self.unanswered.len() >= MAX_UNANSWERED {
                    self.unanswered.pop_front();
                    ev.weird("HTTP_too_many_unanswered_requests");
                }
                self.unanswered
                    .push_back(method_abbreviates(method, b"HEAD"));
                ev.confirm();
                if method_abbreviates(method, b"CONNECT") {
                    self.f.connect_request = true;
                }
                ev.request(
                    method,
                    &line[uri_start..uri_end],
                    &self.scratch,
                    self.f.request_version,
                );
                if self.request.as_ref().is_some_and(|m| !m.finished) {
                    ev.weird("HTTP_overlapping_messages");
                }
                let header = reuse_header(self.request.take());
                self.request = Some(Message::with_header(true, BodyExpect::Maybe, header));
                if self.f.request_version == Version::V09 {
                    self.reply_state = ReplyState::Http09;
                }
            }
            None => {
                let expected = self.f.num_requests == 0 || self.f.keep_alive;
                if !expected {
                    ev.weird("crud_trailing_HTTP_request");
                } else if line.is_empty() {
                    ev.weird("empty_http_request");
                } else {
                    ev.violation();
                    self.request_state = RequestState::Nothing;
                }
            }
        }
    }

    fn reply_line(&mut self, line: &[u8], ev: &mut impl HttpEvents) {
        match parse_reply_line(line, &mut self.f, ev) {
            Some(reason) => {
                if !self.unanswered.is_empty() {
                    ev.confirm();
                }
                self.reply_state = ReplyState::Message;
                self.f.reply_ongoing = true;
                let code = self.f.reply_code;
                ev.reply(self.f.reply_version, code, reason.map(|(s, e)| &line[s..e]));
                if self.f.connect_request && code != 200 {
                    self.f.connect_request = false;
                }
                if self.reply.as_ref().is_some_and(|m| !m.finished) {
                    ev.weird("HTTP_overlapping_messages");
                }
                let header = reuse_header(self.reply.take());
                let expect = self.expect_reply_body();
                self.reply = Some(Message::with_header(false, expect, header));
            }
            None => {
                if !line.is_empty() {
                    ev.violation();
                    self.reply_state = ReplyState::Nothing;
                }
            }
        }
    }

    fn expect_reply_body(&self) -> BodyExpect {
        let code = self.f.reply_code;
        if self.unanswered.front() == Some(&true)
            || (100..200).contains(&code)
            || code == 204
            || code == 304
        {
            BodyExpect::NotExpected
        } else {
            BodyExpect::Expected
        }
    }

    /// Ends the current request (`is_orig`) or reply.
    fn made(&mut self, is_orig: bool, interrupted: bool, ev: &mut impl HttpEvents) {
        if is_orig {
            if !self.f.request_ongoing {
                return;
            }
            self.f.request_ongoing = false;
            if let Some(m) = self.request.as_mut() {
                finish_message(m, ev);
            }
            self.request_state = if interrupted {
                RequestState::Nothing
            } else {
                RequestState::Line
            };
        } else {
            if !self.f.reply_ongoing {
                return;
            }
            self.f.reply_ongoing = false;
            if let Some(m) = self.reply.as_mut() {
                finish_message(m, ev);
            }
            let code = self.f.reply_code;
            if !(100..200).contains(&code) {
                self.unanswered.pop_front();
            }
            let upgraded = code == 101
                && self.unanswered.len() == 1
                && self.f.upgrade_connection
                && self.f.upgrade_protocol;
            if upgraded {
                // The connection now speaks the upgraded protocol (e.g. WebSocket).
                self.f.stopped = true;
            }
            self.f.reply_code = 0;
            self.f.upgrade_connection = false;
            self.f.upgrade_protocol = false;
            self.reply_state = if interrupted || upgraded {
                ReplyState::Nothing
            } else {
                ReplyState::Line
            };
        }
    }
}

/// `method` is a (case-insensitive) abbreviation of `full`: how Zeek compares methods.
fn method_abbreviates(method: &[u8], full: &[u8]) -> bool {
    method.len() <= full.len() && method.eq_ignore_ascii_case(&full[..method.len()])
}

fn is_token_char(c: u8) -> bool {
    c > 31
        && c < 127
        && !matches!(
            c,
            b' ' | b'\t'
                | b'('
                | b')'
                | b'<'
                | b'>'
                | b'@'
                | b','
                | b';'
                | b':'
                | b'\\'
                | b'"'
                | b'/'
                | b'['
                | b']'
                | b'?'
                | b'='
                | b'{'
                | b'}'
        )
}

fn is_uri_char(c: u8) -> bool {
    URI_CHARS[usize::from(c)]
}

/// Bytes a URI is made of (RFC 3986's unreserved and reserved characters, and `%`), as a
/// table: URIs are read a byte at a time.
static URI_CHARS: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        t[c] = (c as u8).is_ascii_alphanumeric();
        c += 1;
    }
    let extra = b":/?#[]@!$&'()*+,;=-_.~%";
    let mut i = 0;
    while i < extra.len() {
        t[extra[i] as usize] = true;
        i += 1;
    }
    t
};

/// Bytes that end a MIME token ([`value_token`]): controls, space, DEL and above, and the
/// separators.
static TOKEN_ENDS: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        t[c] = c <= b' ' as usize || c >= 127;
        c += 1;
    }
    let separators = b"()<>@,;:\\\"/[]?=";
    let mut i = 0;
    while i < separators.len() {
        t[separators[i] as usize] = true;
        i += 1;
    }
    t
};

fn skip_ws(s: &[u8], mut i: usize) -> usize {
    while i < s.len() && (s[i] == b' ' || s[i] == b'\t') {
        i += 1;
    }
    i
}

/// `[0-9].[0-9]` at the start of `s`; the unknown version otherwise.
fn parse_version(s: &[u8], ev: &mut impl HttpEvents) -> Version {
    if s.len() >= 3 && s[0].is_ascii_digit() && s[1] == b'.' && s[2].is_ascii_digit() {
        Version {
            major: s[0] - b'0',
            minor: s[2] - b'0',
        }
    } else {
        ev.weird("bad_HTTP_version");
        Version::default()
    }
}

/// Parses a request line into (method length, URI start, URI end) and the decoded URI in
/// `uri`; sets the request version. `None` for a line that is no request.
fn parse_request_line(
    line: &[u8],
    f: &mut Flags,
    uri: &mut Vec<u8>,
    ev: &mut impl HttpEvents,
) -> Option<(usize, usize, usize)> {
    let method_end = line
        .iter()
        .position(|&c| !is_token_char(c))
        .unwrap_or(line.len());
    if method_end == 0 {
        let n = line.len();
        if n >= 9 && line[n - 9..n - 3].eq_ignore_ascii_case(b" HTTP/") {
            ev.weird("bad_HTTP_request_with_version");
        } else {
            ev.weird("bad_HTTP_request");
        }
        return None;
    }
    let start = skip_ws(line, method_end);
    if start == method_end {
        ev.weird("bad_HTTP_request");
        return None;
    }
    let rest = &line[start..];
    let mut uri_end = rest
        .iter()
        .position(|&c| !is_uri_char(c))
        .unwrap_or(rest.len());
    if uri_end >= rest.len() && rest.starts_with(b"HTTP/") {
        ev.weird("missing_HTTP_uri");
        uri_end = 0;
    }
    // The URI runs up to the whitespace before the first `HTTP/` after its regular part.
    let mut v = uri_end;
    let mut found = None;
    while v < rest.len() {
        uri_end = v;
        v = skip_ws(rest, v);
        if rest[v..].starts_with(b"HTTP/") {
            found = Some(v);
            break;
        }
        v += 1;
    }
    match found {
        None => f.set_version(true, Version::V09, ev),
        Some(v) if v + 8 <= rest.len() => {
            let version = parse_version(&rest[v + 5..], ev);
            f.set_version(true, version, ev);
            if skip_ws(rest, v + 8) != rest.len() {
                ev.weird("crud_after_HTTP_version");
            }
        }
        Some(_) => ev.weird("bad_HTTP_version"),
    }
    if f.request_version == Version::V09 && (method_end < 3 || uri_end == 0) {
        // HTTP/0.9 knows only GET: anything shorter, or without a URI, is not HTTP.
        ev.weird("bad_HTTP_request");
        return None;
    }
    unescape_uri(&rest[..uri_end], uri, ev);
    Some((method_end, start, start + uri_end))
}

/// Parses a status line: sets the reply version and code; returns the reason's range
/// (`Some(None)` when the line has no reason), `None` for a line that is no status line.
#[allow(clippy::option_option)]
fn parse_reply_line(
    line: &[u8],
    f: &mut Flags,
    ev: &mut impl HttpEvents,
) -> Option<Option<(usize, usize)>> {
    let Some(rest) = line.strip_prefix(b"HTTP/") else {
        ev.weird("bad_HTTP_reply");
        return None;
    };
    let version = parse_version(rest, ev);
    f.set_version(false, version, ev);
    let mut i = 5;
    while i < line.len() && !matches!(line[i], b' ' | b'\t') {
        i += 1;
    }
    if i >= line.len() {
        ev.weird("HTTP_reply_code_missing");
        return None;
    }
    i = skip_ws(line, i);
    if i + 3 > line.len() {
        ev.weird("HTTP_reply_code_missing");
        return None;
    }
    let c = &line[i..i + 3];
    f.reply_code = if c.iter().all(u8::is_ascii_digit) {
        u16::from(c[0] - b'0') * 100 + u16::from(c[1] - b'0') * 10 + u16::from(c[2] - b'0')
    } else {
        0
    };
    i += 3;
    while i < line.len() && !matches!(line[i], b' ' | b'\t') {
        i += 1;
    }
    if i >= line.len() {
        ev.weird("HTTP_reply_reason_phrase_missing");
        return Some(None);
    }
    let s = skip_ws(line, i);
    Some(Some((s, line.len())))
}

fn hex_val(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// Percent-decoding as Zeek does it (also `%uXXXX`; odd escapes are kept as they are).
pub fn unescape_uri(s: &[u8], out: &mut Vec<u8>, ev: &mut impl HttpEvents) {
    out.clear();
    let mut i = 0;
    while i < s.len() {
        if s[i] != b'%' {
            // The bytes up to the next escape go over at once.
            let run = memchr::memchr(b'%', &s[i..]).unwrap_or(s.len() - i);
            out.extend_from_slice(&s[i..i + run]);
            i += run;
            continue;
        }
        let rest = &s[i + 1..];
        match rest {
            [] => {
                out.push(b'%');
                ev.weird("illegal_%_at_end_of_URI");
                return;
            }
            [c] => {
                out.extend_from_slice(&[b'%', *c]);
                ev.weird("partial_escape_at_end_of_URI");
                return;
            }
            [b'%', ..] => {
                // A doubled '%': the first is dropped, the second starts the escape.
                ev.weird("double_%_in_URI");
                i += 1;
            }
            [a, b, ..] if hex_val(*a).is_some() && hex_val(*b).is_some() => {
                out.push(hex_val(*a).unwrap_or(0) << 4 | hex_val(*b).unwrap_or(0));
                i += 3;
            }
            [b'u', a, b, c, d, ..] if [a, b, c, d].iter().all(|x| hex_val(**x).is_some()) => {
                let h = |x: &u8| hex_val(*x).unwrap_or(0);
                if !(*a == b'0' && *b == b'0') {
                    out.push(h(a) << 4 | h(b));
                }
                out.push(h(c) << 4 | h(d));
                i += 6;
            }
            [c, ..] => {
                ev.weird("unescaped_%_in_URI");
                out.extend_from_slice(&[b'%', *c]);
                i += 2;
            }
        }
    }
}

/// The first MIME token of a header value (what Zeek compares header values by).
fn value_token(v: &[u8]) -> &[u8] {
    let s = skip_ws(v, 0);
    let e = v[s..]
        .iter()
        .position(|&c| TOKEN_ENDS[usize::from(c)])
        .map_or(v.len(), |e| s + e);
    &v[s..e]
}

/// Decimal or hex digits at the start of `s` (after blanks); `None` if none or too large.
fn leading_number(s: &[u8], radix: u32) -> Option<u64> {
    let s = &s[skip_ws(s, 0)..];
    let mut n: u64 = 0;
    let mut any = false;
    for &c in s {
        let Some(d) = (c as char).to_digit(radix) else {
            break;
        };
        n = n.checked_mul(u64::from(radix))?.checked_add(u64::from(d))?;
        any = true;
    }
    // Lengths beyond 2^62 are not plausible and would only invite overflow downstream.
    (any && n < 1 << 62).then_some(n)
}

/// One line of a message (header, chunk framing, or a line of a line-delimited body).
fn message_line(
    m: &mut Message,
    line: &[u8],
    raw_len: usize,
    lines: &mut Lines,
    f: &mut Flags,
    ev: &mut impl HttpEvents,
) {
    let _ = raw_len;
    message_deliver(m, line, true, lines, f, ev);
}

/// Zeek's entity delivery: `crlf` says the data was a line (its line end removed).
fn message_deliver(
    m: &mut Message,
    data: &[u8],
    crlf: bool,
    lines: &mut Lines,
    f: &mut Flags,
    ev: &mut impl HttpEvents,
) {
    if m.end_of_data {
        if !m.multipart {
            ev.weird("HTTP_data_trailing_the_end_of_entity");
        }
        return;
    }
    if m.in_header {
        header_line(m, data, lines, f, ev);
        return;
    }
    if m.multipart {
        deliver_body(m, data, crlf, ev);
        let closing = m.boundary.as_deref().is_some_and(|b| {
            data.len() >= b.len() + 4
                && data.starts_with(b"--")
                && data[2..].starts_with(b)
                && data[2 + b.len()..].starts_with(b"--")
        });
        if closing {
            end_of_data(m, ev);
        }
        return;
    }
    match m.chunked {
        Chunked::ExpectSize => {
            let size = leading_number(data, 16).unwrap_or_else(|| {
                ev.weird("HTTP_bad_chunk_size");
                0
            });
            if size > 0 {
                m.chunked = Chunked::ExpectData;
                m.expect_data = size;
                lines.plain = size;
            } else {
                m.in_header = true;
                m.chunked = Chunked::ExpectTrailer;
            }
        }
        Chunked::ExpectData => {
            m.expect_data = m.expect_data.saturating_sub(data.len() as u64);
            if m.expect_data == 0 {
                lines.plain = 0;
                m.chunked = Chunked::ExpectDataCrlf;
            }
            deliver_body(m, data, false, ev);
        }
        Chunked::ExpectDataCrlf => {
            if !data.is_empty() {
                ev.weird("HTTP_inaccurate_chunk_size");
            }
            m.chunked = Chunked::ExpectSize;
        }
        Chunked::No | Chunked::Announced | Chunked::ExpectTrailer | Chunked::Done => {
            if m.content_length.is_some() {
                deliver_body(m, data, false, ev);
                m.expect_data = m.expect_data.saturating_sub(data.len() as u64);
                if m.expect_data == 0 {
                    lines.plain = 0;
                    end_of_data(m, ev);
                }
            } else {
                deliver_body(m, data, crlf, ev);
            }
        }
    }
}

fn header_line(
    m: &mut Message,
    line: &[u8],
    lines: &mut Lines,
    f: &mut Flags,
    ev: &mut impl HttpEvents,
) {
    if line.is_empty() {
        finish_header(m, f, ev);
        all_headers(m, lines, f, ev);
        return;
    }
    if matches!(line[0], b' ' | b'\t') {
        if m.header.is_empty() {
            ev.weird("HTTP_continuation_without_header");
        } else if m.header.len() + line.len() <= MAX_LINE {
            m.header.extend_from_slice(line);
        } else {
            ev.weird("HTTP_header_too_long");
        }
        return;
    }
    finish_header(m, f, ev);
    m.header.extend_from_slice(line);
}

/// Interprets the header collected so far.
fn finish_header(m: &mut Message, f: &mut Flags, ev: &mut impl HttpEvents) {
    if m.header.is_empty() {
        return;
    }
    let h = std::mem::take(&mut m.header);
    m.headers += 1;
    if m.headers > MAX_HEADERS {
        if m.headers == MAX_HEADERS + 1 {
            ev.weird("HTTP_too_many_headers");
        }
    } else if let Some(colon) = memchr::memchr(b':', &h) {
        let name = h[..colon].trim_ascii_end();
        let value = &h[skip_ws(&h, colon + 1)..];
        let token = value_token(value);
        entity_header(m, name, value, token, f, ev);
        analyzer_header(m.is_orig, name, token, f);
        ev.header(m.is_orig, name, value);
    } else {
        ev.weird("HTTP_header_without_colon");
    }
    m.header = h;
    m.header.clear();
}

/// What headers mean for the entity (its body framing and encoding).
/// `token` is the value's first token ([`value_token`]).
fn entity_header(
    m: &mut Message,
    name: &[u8],
    value: &[u8],
    token: &[u8],
    f: &Flags,
    ev: &mut impl HttpEvents,
) {
    if name.eq_ignore_ascii_case(b"content-length") {
        if !token.is_empty() {
            let n = leading_number(token, 10)
                .filter(|_| token.iter().all(u8::is_ascii_digit))
                .unwrap_or(0);
            m.content_length = Some(n);
            if let Some(r) = m.range_length {
                if r != n {
                    ev.weird("HTTP_range_not_matching_len");
                    m.content_length = Some(r.max(n));
                }
            }
        }
    } else if name.eq_ignore_ascii_case(b"content-range") && !m.is_orig && f.reply_code == 206 {
        content_range(m, value, ev);
    } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
        let version = if f.request_ongoing {
            f.request_version
        } else {
            f.reply_version
        };
        if token.eq_ignore_ascii_case(b"chunked") && version == Version::V11 {
            m.chunked = Chunked::Announced;
        }
    } else if name.eq_ignore_ascii_case(b"content-encoding") {
        if token.eq_ignore_ascii_case(b"gzip") || token.eq_ignore_ascii_case(b"x-gzip") {
            m.encoding = Encoding::Gzip;
        } else if token.eq_ignore_ascii_case(b"deflate") {
            m.encoding = Encoding::Deflate;
        }
    } else if name.eq_ignore_ascii_case(b"content-type") {
        m.multipart =
            token.eq_ignore_ascii_case(b"multipart") || token.eq_ignore_ascii_case(b"message");
        m.boundary = boundary_param(value);
    }
}

/// The `boundary` parameter of a Content-Type value (quoted or not).
fn boundary_param(value: &[u8]) -> Option<Vec<u8>> {
    let key = b"boundary=";
    let at = value
        .windows(key.len())
        .position(|w| w.eq_ignore_ascii_case(key))?;
    let v = &value[at + key.len()..];
    let b = match v.strip_prefix(b"\"") {
        Some(q) => &q[..q.iter().position(|&c| c == b'"').unwrap_or(q.len())],
        None => {
            &v[..v
                .iter()
                .position(|&c| c == b';' || c == b' ' || c == b'\t')
                .unwrap_or(v.len())]
        }
    };
    (!b.is_empty() && b.len() <= MAX_BOUNDARY).then(|| b.to_vec())
}

/// `bytes first-last/instance` of a 206 reply: its length is the body length.
fn content_range(m: &mut Message, value: &[u8], ev: &mut impl HttpEvents) {
    let unit = value_token(value);
    if unit != b"bytes" {
        ev.weird("HTTP_content_range_unknown_byte_unit");
        return;
    }
    let start = skip_ws(value, 0) + unit.len();
    let spec: Vec<u8> = value[start..]
        .iter()
        .copied()
        .filter(|&c| c != b' ')
        .collect();
    let Some(slash) = spec.iter().position(|&c| c == b'/') else {
        ev.weird("HTTP_content_range_cannot_parse");
        return;
    };
    let range = &spec[..slash];
    let Some(dash) = range.iter().position(|&c| c == b'-') else {
        ev.weird("HTTP_content_range_cannot_parse");
        return;
    };
    let first = leading_number(&range[..dash], 10).unwrap_or(0);
    let last = leading_number(&range[dash + 1..], 10).unwrap_or(0);
    if last < first {
        ev.weird("HTTP_non_positive_content_range");
        return;
    }
    let len = last - first + 1;
    m.range_length = Some(len);
    match m.content_length {
        Some(cl) if cl > 0 => {
            if cl != len {
                ev.weird("HTTP_range_not_matching_len");
                m.content_length = Some(cl.max(len));
            }
        }
        _ => m.content_length = Some(len),
    }
}

/// What headers mean for the connection (persistence, upgrades).
fn analyzer_header(is_orig: bool, name: &[u8], token: &[u8], f: &mut Flags) {
    if name.eq_ignore_ascii_case(b"connection") {
        if is_orig {
            if token.eq_ignore_ascii_case(b"keep-alive") {
                f.keep_alive = true;
            }
        } else if token.eq_ignore_ascii_case(b"close") {
            f.connection_close = true;
        } else if token.eq_ignore_ascii_case(b"upgrade") {
            f.upgrade_connection = true;
        }
    } else if !is_orig && name.eq_ignore_ascii_case(b"upgrade") {
        f.upgrade_protocol = !token.is_empty();
    }
}

/// The header block ended: decide how the body is framed.
fn all_headers(m: &mut Message, lines: &mut Lines, f: &Flags, ev: &mut impl HttpEvents) {
    m.in_header = false;
    if m.chunked == Chunked::ExpectTrailer {
        m.chunked = Chunked::Done;
        end_of_data(m, ev);
        return;
    }
    ev.headers_done(m.is_orig);
    if m.encoding != Encoding::Identity {
        m.decoder = Some(Box::new(Decoder::new(m.encoding)));
    }
    if m.expect_body == BodyExpect::NotExpected {
        end_of_data(m, ev);
        return;
    }
    if m.multipart {
        if m.chunked != Chunked::No {
            ev.weird("HTTP_chunked_transfer_for_multipart_message");
        }
    } else if m.chunked != Chunked::No {
        m.chunked = Chunked::ExpectSize;
    } else if let Some(cl) = m.content_length {
        if cl > 0 {
            m.expect_data = cl;
            lines.plain = cl;
        } else {
            end_of_data(m, ev);
        }
    } else if f.connection_close || m.encoding != Encoding::Identity {
        m.expect_data = UNTIL_CLOSE;
        lines.plain = UNTIL_CLOSE;
    } else if m.expect_body != BodyExpect::Expected {
        end_of_data(m, ev);
    }
}

/// Body bytes of a message: counted (decoded when encoded) and sampled.
fn deliver_body(m: &mut Message, data: &[u8], crlf: bool, ev: &mut impl HttpEvents) {
    if let Some(dec) = m.decoder.as_mut() {
        let mut out = Vec::new();
        let (n, failed) = dec.feed(data, &mut out);
        m.body_length += n;
        if !out.is_empty() {
            ev.body(m.is_orig, &out);
        }
        if failed {
            ev.weird("HTTP_body_decoding_failed");
        }
        return;
    }
    m.body_length += data.len() as u64 + if crlf { 2 } else { 0 };
    if !data.is_empty() {
        ev.body(m.is_orig, data);
    }
}

/// A content gap in this message: true if it fell inside a body of known length (then it
/// counts as body and parsing goes on).
fn message_gap(m: &mut Message, len: u64, lines: &mut Lines, ev: &mut impl HttpEvents) -> bool {
    if m.end_of_data || m.body_length == 0 {
        return false;
    }
    if m.chunked != Chunked::No {
        if m.chunked == Chunked::ExpectData && m.expect_data >= len {
            m.body_length += len;
            m.expect_data -= len;
            lines.plain = m.expect_data;
            if m.expect_data == 0 {
                m.chunked = Chunked::ExpectDataCrlf;
            }
            return true;
        }
        return false;
    }
    if m.content_length.is_some() && m.expect_data >= len && m.expect_data != UNTIL_CLOSE {
        m.body_length += len;
        m.expect_data -= len;
        lines.plain = m.expect_data;
        if m.expect_data == 0 {
            end_of_data(m, ev);
        }
        return true;
    }
    false
}

/// The entity's data ended: the message is done.
fn end_of_data(m: &mut Message, ev: &mut impl HttpEvents) {
    if !m.end_of_data {
        finish_message(m, ev);
    }
}

/// Ends a message, complete or not: pending decoded bytes are counted, then it is reported.
fn finish_message(m: &mut Message, ev: &mut impl HttpEvents) {
    if m.finished {
        return;
    }
    m.end_of_data = true;
    m.finished = true;
    if m.in_header && !m.header.is_empty() {
        let h = std::mem::take(&mut m.header);
        if let Some(colon) = h.iter().position(|&c| c == b':') {
            ev.cut_header(
                m.is_orig,
                h[..colon].trim_ascii_end(),
                &h[skip_ws(&h, colon + 1)..],
            );
        }
    }
    if let Some(mut dec) = m.decoder.take() {
        let mut out = Vec::new();
        m.body_length += dec.finish(&mut out);
        if !out.is_empty() {
            ev.body(m.is_orig, &out);
        }
    }
    ev.message_done(m.is_orig, m.body_length);
}

#[cfg(test)]
mod tables {
    use super::*;

    #[test]
    fn byte_tables_match_their_definitions() {
        for c in 0..=255u8 {
            let uri = c.is_ascii_alphanumeric() || b":/?#[]@!$&'()*+,;=-_.~%".contains(&c);
            assert_eq!(is_uri_char(c), uri, "{c}");
            let end = c <= b' ' || c >= 127 || b"()<>@,;:\\\"/[]?=".contains(&c);
            assert_eq!(TOKEN_ENDS[usize::from(c)], end, "{c}");
        }
    }
}

//! Rule text → [`Rule`]: the header (action, protocol, address and port groups, direction)
//! and the options, in Suricata's syntax.
//!
//! A rule that uses something the engine does not implement is not an error: it comes back as
//! [`ParseError::Unsupported`] with a short reason (the keyword, protocol or pcre construct),
//! which the load report counts. Rules never load half-understood.

use std::collections::HashMap;

use super::pcre;
use super::rule::*;
use super::vars::Vars;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// Valid Suricata, not supported here: `reason` names what (counted in the load report).
    Unsupported(String),
    /// Not a valid rule.
    Invalid(String),
}

type PResult<T> = Result<T, ParseError>;

fn invalid<T>(msg: impl Into<String>) -> PResult<T> {
    Err(ParseError::Invalid(msg.into()))
}

fn unsupported<T>(reason: impl Into<String>) -> PResult<T> {
    Err(ParseError::Unsupported(reason.into()))
}

/// Names shared across rules: flowbit names, numbered in order of appearance.
#[derive(Debug, Default)]
pub struct Names {
    pub flowbits: HashMap<String, u32>,
}

impl Names {
    fn flowbit(&mut self, name: &str) -> u32 {
        let n = self.flowbits.len() as u32;
        *self.flowbits.entry(name.to_string()).or_insert(n)
    }
}

/// Parses one rule line (without a leading `#`).
pub fn parse_rule(line: &str, vars: &Vars, names: &mut Names) -> PResult<Rule> {
    let line = line.trim();
    let open = line
        .find('(')
        .ok_or_else(|| ParseError::Invalid("no '(' before the options".into()))?;
    let body = line[open + 1..].trim_end();
    let body = body
        .strip_suffix(')')
        .ok_or_else(|| ParseError::Invalid("options do not end with ')'".into()))?;
    let header = parse_header(&line[..open], vars)?;
    let (action, header) = header;
    let opts = split_options(body)?;
    let mut b = Builder::new(action, header, names);
    for (name, value) in &opts {
        b.option(name, value.as_deref())?;
    }
    b.finish()
}

fn parse_header(h: &str, vars: &Vars) -> PResult<(&'static str, Header)> {
    let toks = tokenize_header(h)?;
    if toks.len() != 7 {
        return invalid(format!("header needs 7 fields, has {}", toks.len()));
    }
    let action = match toks[0].as_str() {
        "alert" => "alert",
        "pass" => "pass",
        "drop" => "drop",
        "reject" | "rejectsrc" | "rejectdst" | "rejectboth" => "reject",
        a => return invalid(format!("unknown action {a:?}")),
    };
    let (proto, app) = match toks[1].as_str() {
        "ip" | "pkthdr" => (Proto::Ip, None),
        "tcp" => (Proto::Tcp, None),
        "tcp-pkt" => (Proto::TcpPkt, None),
        "tcp-stream" => (Proto::TcpStream, None),
        "udp" => (Proto::Udp, None),
        "icmp" => (Proto::Icmp, None),
        "icmpv4" => (Proto::Icmpv4, None),
        "icmpv6" => (Proto::Icmpv6, None),
        p => match AppProto::parse(p) {
            Some(a @ (AppProto::Dns | AppProto::Enip)) => (Proto::Ip, Some(a)),
            Some(a) => (Proto::Tcp, Some(a)),
            None => return unsupported(format!("protocol {p}")),
        },
    };
    let bidir = match toks[4].as_str() {
        "->" => false,
        "<>" => true,
        "=>" => return unsupported("direction =>"),
        d => return invalid(format!("bad direction {d:?}")),
    };
    let addr = |s: &str| {
        vars.address(s).map_err(|e| {
            if e.starts_with("undefined") {
                ParseError::Unsupported(e)
            } else {
                ParseError::Invalid(e)
            }
        })
    };
    let port = |s: &str| {
        vars.ports(s).map_err(|e| {
            if e.starts_with("undefined") {
                ParseError::Unsupported(e)
            } else {
                ParseError::Invalid(e)
            }
        })
    };
    Ok((
        action,
        Header {
            proto,
            app,
            src: addr(&toks[2])?,
            sport: port(&toks[3])?,
            dst: addr(&toks[5])?,
            dport: port(&toks[6])?,
            bidir,
        },
    ))
}

/// Splits a header at whitespace, keeping `[...]` groups (which may hold spaces) whole.
fn tokenize_header(h: &str) -> PResult<Vec<String>> {
    let mut toks = Vec::new();
    let mut cur = String::new();
    let mut depth = 0i32;
    for c in h.chars() {
        match c {
            '[' => {
                depth += 1;
                cur.push(c)
            }
            ']' => {
                depth -= 1;
                cur.push(c)
            }
            c if c.is_whitespace() && depth == 0 => {
                if !cur.is_empty() {
                    toks.push(std::mem::take(&mut cur));
                }
            }
            c if c.is_whitespace() => {}
            c => cur.push(c),
        }
    }
    if depth != 0 {
        return invalid("unbalanced brackets in header");
    }
    if !cur.is_empty() {
        toks.push(cur);
    }
    Ok(toks)
}

/// Splits the option list at unescaped `;` into `name[:value]` pairs (values trimmed, escapes
/// kept for the keyword parsers).
fn split_options(body: &str) -> PResult<Vec<(String, Option<String>)>> {
    let mut out = Vec::new();
    let mut cur = String::new();
    // Suricata splits at unescaped `;` only: quotes inside pcre patterns need no escape.
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                cur.push(c);
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            ';' => {
                push_option(&mut out, &cur)?;
                cur.clear();
            }
            c => cur.push(c),
        }
    }
    if !cur.trim().is_empty() {
        return invalid(format!("option {:?} lacks ';'", cur.trim()));
    }
    Ok(out)
}

fn push_option(out: &mut Vec<(String, Option<String>)>, s: &str) -> PResult<()> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(());
    }
    match s.split_once(':') {
        Some((n, v)) => out.push((n.trim().to_string(), Some(v.trim().to_string()))),
        None => out.push((s.to_string(), None)),
    }
    Ok(())
}

/// Removes the surrounding quotes (if any) and Suricata's escapes.
fn unquote(v: &str) -> String {
    let v = v.trim();
    let v = v
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(v);
    let mut out = String::with_capacity(v.len());
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Content text: literal bytes with `|hex hex|` sections.
pub fn parse_content_bytes(s: &str) -> PResult<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len());
    let mut in_hex = false;
    let mut hex = String::new();
    for c in s.chars() {
        if c == '|' {
            if in_hex {
                let digits: String = hex.chars().filter(|c| !c.is_whitespace()).collect();
                if !digits.len().is_multiple_of(2) {
                    return invalid(format!("odd hex digits in content |{hex}|"));
                }
                for i in (0..digits.len()).step_by(2) {
                    let b = u8::from_str_radix(&digits[i..i + 2], 16)
                        .map_err(|_| ParseError::Invalid(format!("bad hex |{hex}|")))?;
                    out.push(b);
                }
                hex.clear();
            }
            in_hex = !in_hex;
        } else if in_hex {
            hex.push(c);
        } else {
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        }
    }
    if in_hex {
        return invalid("unterminated |hex| in content");
    }
    Ok(out)
}

fn parse_int(s: &str) -> PResult<i64> {
    let s = s.trim();
    let r = if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        i64::from_str_radix(h, 16)
    } else if let Some(h) = s.strip_prefix("-0x") {
        i64::from_str_radix(h, 16).map(|v| -v)
    } else {
        s.parse::<i64>()
    };
    r.map_err(|_| ParseError::Invalid(format!("bad number {s:?}")))
}

/// `N`, `<N`, `>N`, `<=N`, `>=N`, `!N`, `=N`, `N<>M`, `N-M` (exclusive range).
pub fn parse_cmp(s: &str) -> PResult<Cmp> {
    let s = s.trim();
    let num = |t: &str| -> PResult<u64> {
        let v = parse_int(t)?;
        u64::try_from(v).map_err(|_| ParseError::Invalid(format!("negative value {t:?}")))
    };
    if let Some((a, b)) = s.split_once("<>") {
        return Ok(Cmp::Between(num(a)?, num(b)?));
    }
    if let Some(r) = s.strip_prefix("<=") {
        return Ok(Cmp::Le(num(r)?));
    }
    if let Some(r) = s.strip_prefix(">=") {
        return Ok(Cmp::Ge(num(r)?));
    }
    if let Some(r) = s.strip_prefix('<') {
        return Ok(Cmp::Lt(num(r)?));
    }
    if let Some(r) = s.strip_prefix('>') {
        return Ok(Cmp::Gt(num(r)?));
    }
    if let Some(r) = s.strip_prefix('!') {
        return Ok(Cmp::Ne(num(r)?));
    }
    if let Some(r) = s.strip_prefix('=') {
        return Ok(Cmp::Eq(num(r)?));
    }
    if let Some((a, b)) = s.split_once('-') {
        if !a.is_empty() {
            return Ok(Cmp::Between(num(a)?, num(b)?));
        }
    }
    Ok(Cmp::Eq(num(s)?))
}

/// A sticky buffer keyword, or `None`.
fn sticky(name: &str) -> Option<Buf> {
    use Buf::*;
    Some(match name {
        "pkt_data" => Payload,
        "file_data" | "file.data" => FileData,
        "http.uri" => HttpUri,
        "http.uri.raw" => HttpUriRaw,
        "http.method" => HttpMethod,
        "http.protocol" | "http_protocol" => HttpProtocol,
        "http.request_line" | "http_request_line" => HttpRequestLine,
        "http.start" | "http_start" => HttpStart,
        "http.host" => HttpHost,
        "http.host.raw" => HttpHostRaw,
        "http.header" => HttpHeader,
        "http.header.raw" => HttpHeaderRaw,
        "http.header_names" | "http_header_names" => HttpHeaderNames,
        "http.user_agent" => HttpUserAgent,
        "http.cookie" => HttpCookie,
        "http.referer" | "http_referer" => HttpReferer,
        "http.content_type" | "http_content_type" => HttpContentType,
        "http.content_len" | "http_content_len" => HttpContentLen,
        "http.accept" | "http_accept" => HttpAccept,
        "http.accept_enc" | "http_accept_enc" => HttpAcceptEnc,
        "http.accept_lang" | "http_accept_lang" => HttpAcceptLang,
        "http.connection" | "http_connection" => HttpConnection,
        "http.location" => HttpLocation,
        "http.server" => HttpServer,
        "http.request_body" | "http_request_body" => HttpRequestBody,
        "http.response_body" | "http_response_body" => HttpResponseBody,
        "http.stat_code" => HttpStatCode,
        "http.stat_msg" => HttpStatMsg,
        "http.response_line" | "http_response_line" => HttpResponseLine,
        "http.request_header" => HttpRequestHeader,
        "http.response_header" => HttpResponseHeader,
        "dns.query" | "dns_query" => DnsQuery,
        "tls.sni" | "tls_sni" => TlsSni,
        "tls.cert_subject" | "tls_cert_subject" => TlsCertSubject,
        "tls.cert_issuer" | "tls_cert_issuer" => TlsCertIssuer,
        "tls.cert_serial" | "tls_cert_serial" => TlsCertSerial,
        "tls.cert_fingerprint" | "tls_cert_fingerprint" => TlsCertFingerprint,
        "tls.certs" => TlsCerts,
        "ja3.hash" | "ja3_hash" => Ja3Hash,
        "ja3.string" => Ja3String,
        "ja3s.hash" => Ja3sHash,
        "ja3s.string" => Ja3sString,
        "ipv4.hdr" | "ipv6.hdr" => IpHdr,
        "icmpv4.hdr" | "icmpv6.hdr" => IcmpHdr,
        _ => return None,
    })
}

/// Old-style content modifiers that move the preceding content into a buffer.
fn legacy_modifier(name: &str) -> Option<Buf> {
    use Buf::*;
    Some(match name {
        "http_uri" => HttpUri,
        "http_raw_uri" => HttpUriRaw,
        "http_method" => HttpMethod,
        "http_header" => HttpHeader,
        "http_raw_header" => HttpHeaderRaw,
        "http_cookie" => HttpCookie,
        "http_user_agent" => HttpUserAgent,
        "http_host" => HttpHost,
        "http_raw_host" => HttpHostRaw,
        "http_client_body" => HttpRequestBody,
        "http_server_body" => HttpResponseBody,
        "http_stat_code" => HttpStatCode,
        "http_stat_msg" => HttpStatMsg,
        _ => return None,
    })
}

fn transform(name: &str) -> Option<Transform> {
    Some(match name {
        "to_lowercase" => Transform::ToLowercase,
        "to_uppercase" => Transform::ToUppercase,
        "strip_whitespace" => Transform::StripWhitespace,
        "compress_whitespace" => Transform::CompressWhitespace,
        "url_decode" => Transform::UrlDecode,
        "dotprefix" => Transform::DotPrefix,
        "header_lowercase" => Transform::HeaderLowercase,
        _ => return None,
    })
}

/// Keywords that only describe the rule, or that change nothing an IDS reports.
const IGNORED: &[&str] = &[
    "reference",
    "rawbytes",
    "prefilter",
    "tag",
    "flowvar",
    "pktvar",
    "requires",
];

struct Builder<'n> {
    rule: Rule,
    names: &'n mut Names,
    /// Current sticky buffer and its transforms.
    cur: (Buf, Vec<Transform>),
    /// List and index of the last content (for its modifiers).
    last_content: Option<(usize, usize)>,
    /// Last content or pcre (for `fast_pattern`-less relative checks).
    vars: Vec<String>,
    has_sid: bool,
}

impl<'n> Builder<'n> {
    fn new(action: &'static str, header: Header, names: &'n mut Names) -> Builder<'n> {
        Builder {
            rule: Rule {
                action,
                header,
                sid: 0,
                gid: 1,
                rev: 0,
                msg: String::new(),
                classtype: None,
                priority: None,
                metadata: Vec::new(),
                flow: FlowOpts::default(),
                lists: Vec::new(),
                packet: Vec::new(),
                flowbits: Vec::new(),
                noalert: false,
                threshold: None,
                detection_filter: None,
                app_layer: Vec::new(),
                target_src: None,
                nvars: 0,
            },
            names,
            cur: (Buf::Payload, Vec::new()),
            last_content: None,
            vars: Vec::new(),
            has_sid: false,
        }
    }

    /// The list for the current sticky buffer, created on first use.
    fn list_for(&mut self, buf: Buf, transforms: &[Transform]) -> usize {
        if let Some(i) = self
            .rule
            .lists
            .iter()
            .position(|l| l.buf == buf && l.transforms == transforms)
        {
            return i;
        }
        self.rule.lists.push(BufList {
            buf,
            transforms: transforms.to_vec(),
            matches: Vec::new(),
        });
        self.rule.lists.len() - 1
    }

    fn push_match(&mut self, m: Match) -> (usize, usize) {
        let (buf, tr) = self.cur.clone();
        let li = self.list_for(buf, &tr);
        self.rule.lists[li].matches.push(m);
        (li, self.rule.lists[li].matches.len() - 1)
    }

    fn last_content_mut(&mut self, kw: &str) -> PResult<&mut Content> {
        let Some((li, mi)) = self.last_content else {
            return invalid(format!("{kw} without a preceding content"));
        };
        match &mut self.rule.lists[li].matches[mi] {
            Match::Content(c) => Ok(c),
            _ => invalid(format!("{kw} without a preceding content")),
        }
    }

    fn num(&self, s: &str) -> PResult<Num> {
        let s = s.trim();
        if let Some(i) = self.vars.iter().position(|v| v == s) {
            return Ok(Num::Var(i as u8));
        }
        Ok(Num::Lit(parse_int(s)?))
    }

    fn option(&mut self, name: &str, value: Option<&str>) -> PResult<()> {
        let v = value.unwrap_or("");
        if let Some(buf) = sticky(name) {
            self.cur = (buf, Vec::new());
            return Ok(());
        }
        if let Some(t) = transform(name) {
            if self.cur.0 == Buf::Payload {
                return unsupported(format!("transform {name} on the payload"));
            }
            self.cur.1.push(t);
            return Ok(());
        }
        if let Some(buf) = legacy_modifier(name) {
            return self.move_last_content(buf);
        }
        if IGNORED.contains(&name) {
            return Ok(());
        }
        match name {
            "msg" => self.rule.msg = unquote(v),
            "sid" => {
                self.rule.sid = parse_int(v)? as u32;
                self.has_sid = true;
            }
            "rev" => self.rule.rev = parse_int(v)? as u32,
            "gid" => self.rule.gid = parse_int(v)? as u32,
            "classtype" => self.rule.classtype = Some(v.trim().to_string()),
            "priority" => self.rule.priority = Some(parse_int(v)?.clamp(1, 255) as u8),
            "metadata" => {
                for item in v.split(',') {
                    let item = item.trim();
                    if item.is_empty() {
                        continue;
                    }
                    let (k, val) = item.split_once(' ').unwrap_or((item, ""));
                    self.rule
                        .metadata
                        .push((k.trim().to_string(), val.trim().to_string()));
                }
            }
            "target" => {
                self.rule.target_src = match v.trim() {
                    "src_ip" => Some(true),
                    "dest_ip" => Some(false),
                    t => return invalid(format!("bad target {t:?}")),
                }
            }
            "noalert" => self.rule.noalert = true,
            "content" | "uricontent" => {
                if name == "uricontent" {
                    self.cur = (Buf::HttpUri, Vec::new());
                }
                let v = v.trim();
                let (negated, q) = match v.strip_prefix('!') {
                    Some(r) => (true, r.trim()),
                    None => (false, v),
                };
                if !(q.starts_with('"') && q.ends_with('"') && q.len() >= 2) {
                    return invalid("content must be quoted");
                }
                let pattern = parse_content_bytes(&unquote(q))?;
                if pattern.is_empty() {
                    return invalid("empty content");
                }
                let at = self.push_match(Match::Content(Content {
                    pattern,
                    negated,
                    ..Content::default()
                }));
                self.last_content = Some(at);
            }
            "nocase" => self.last_content_mut(name)?.nocase = true,
            "depth" | "offset" | "distance" | "within" => {
                let n = self.num(v)?;
                let c = self.last_content_mut(name)?;
                let slot = match name {
                    "depth" => &mut c.depth,
                    "offset" => &mut c.offset,
                    "distance" => &mut c.distance,
                    _ => &mut c.within,
                };
                *slot = Some(n);
            }
            "startswith" => self.last_content_mut(name)?.startswith = true,
            "endswith" => self.last_content_mut(name)?.endswith = true,
            "fast_pattern" => {
                let c = self.last_content_mut(name)?;
                c.fast_pattern = true;
                let v = v.trim();
                if v.is_empty() || v == "only" {
                } else if let Some((o, l)) = v.split_once(',') {
                    let o = parse_int(o)? as usize;
                    let l = parse_int(l)? as usize;
                    if o + l <= c.pattern.len() && l > 0 {
                        c.fp_chop = Some((o, l));
                    }
                } else {
                    return invalid(format!("bad fast_pattern {v:?}"));
                }
            }
            "isdataat" => {
                let mut parts = v.split(',').map(str::trim);
                let first = parts.next().unwrap_or("");
                let (negated, n) = match first.strip_prefix('!') {
                    Some(r) => (true, r),
                    None => (false, first),
                };
                let n = self.num(n)?;
                let mut relative = false;
                for p in parts {
                    match p {
                        "relative" => relative = true,
                        "rawbytes" => {}
                        o => return invalid(format!("bad isdataat option {o:?}")),
                    }
                }
                self.push_match(Match::IsDataAt {
                    n,
                    relative,
                    negated,
                });
            }
            "bsize" => {
                let c = parse_cmp(v)?;
                self.push_match(Match::Bsize(c));
            }
            "enip_command" => {
                let cmp = parse_cmp(v)?;
                let li = self.list_for(Buf::EnipCommand, &[]);
                self.rule.lists[li].matches.push(Match::Value(cmp));
                if self.rule.header.app.is_none() {
                    self.rule.header.app = Some(AppProto::Enip);
                }
            }
            "dns.opcode" => {
                let cmp = parse_cmp(v)?;
                let li = self.list_for(Buf::DnsOpcode, &[]);
                self.rule.lists[li].matches.push(Match::Value(cmp));
            }
            "urilen" => {
                let (c, raw) = match v.split_once(',') {
                    Some((c, m)) => (c, m.trim() == "raw"),
                    None => (v, false),
                };
                let cmp = parse_cmp(c)?;
                let buf = if raw { Buf::HttpUriRaw } else { Buf::HttpUri };
                let li = self.list_for(buf, &[]);
                self.rule.lists[li].matches.push(Match::Bsize(cmp));
            }
            "pcre" => {
                let p = pcre::parse(v)?;
                let buf = p.buffer.unwrap_or(self.cur.0);
                let tr = if p.buffer.is_some() {
                    Vec::new()
                } else {
                    self.cur.1.clone()
                };
                let li = self.list_for(buf, &tr);
                self.rule.lists[li].matches.push(Match::Pcre(p.pcre));
            }
            "byte_test" => {
                let m = self.byte_test(v)?;
                self.push_match(m);
            }
            "byte_jump" => {
                let m = self.byte_jump(v)?;
                self.push_match(m);
            }
            "byte_extract" => {
                let m = self.byte_extract(v)?;
                self.push_match(m);
            }
            "flow" => self.flow(v)?,
            "flowbits" => self.flowbits(v)?,
            "threshold" => self.rule.threshold = Some(parse_threshold(v, false)?),
            "detection_filter" => self.rule.detection_filter = Some(parse_threshold(v, true)?),
            "app-layer-protocol" => {
                let v = v.trim();
                let (neg, p) = match v.strip_prefix('!') {
                    Some(r) => (true, r.trim()),
                    None => (false, v),
                };
                let Some(a) = AppProto::parse(p) else {
                    return unsupported(format!("app-layer-protocol:{p}"));
                };
                self.rule.app_layer.push((a, neg));
            }
            "dsize" => self.rule.packet.push(PacketCheck::Dsize(parse_cmp(v)?)),
            "ttl" => self.rule.packet.push(PacketCheck::Ttl(parse_cmp(v)?)),
            "itype" => self.rule.packet.push(PacketCheck::Itype(parse_cmp(v)?)),
            "icode" => self.rule.packet.push(PacketCheck::Icode(parse_cmp(v)?)),
            "icmp_id" => self
                .rule
                .packet
                .push(PacketCheck::IcmpId(parse_int(v)? as u16)),
            "icmp_seq" => self
                .rule
                .packet
                .push(PacketCheck::IcmpSeq(parse_int(v)? as u16)),
            "ip_proto" => {
                let v = v.trim();
                let (neg, p) = match v.strip_prefix('!') {
                    Some(r) => (true, r),
                    None => (false, v),
                };
                let n = match p {
                    "tcp" | "TCP" => 6,
                    "udp" | "UDP" => 17,
                    "icmp" | "ICMP" => 1,
                    "ipv6-icmp" | "icmpv6" => 58,
                    "gre" | "GRE" => 47,
                    "esp" => 50,
                    "ah" => 51,
                    p => match parse_int(p) {
                        Ok(n) => n as u8,
                        Err(_) => return unsupported(format!("ip_proto:{p}")),
                    },
                };
                self.rule.packet.push(PacketCheck::IpProto(n, neg));
            }
            "flags" | "tcp.flags" => self.rule.packet.push(parse_flags(v)?),
            "fragbits" => {
                let (bits, mode) = parse_fragbits(v)?;
                self.rule.packet.push(PacketCheck::FragBits { bits, mode });
            }
            "seq" => self
                .rule
                .packet
                .push(PacketCheck::Seq(parse_int(v)? as u32)),
            "ack" => self
                .rule
                .packet
                .push(PacketCheck::Ack(parse_int(v)? as u32)),
            "window" => {
                let v = v.trim();
                let (neg, n) = match v.strip_prefix('!') {
                    Some(r) => (true, r),
                    None => (false, v),
                };
                self.rule
                    .packet
                    .push(PacketCheck::Window(parse_int(n)? as u16, neg));
            }
            "id" => self
                .rule
                .packet
                .push(PacketCheck::IpId(parse_int(v)? as u16)),
            "ipopts" => {
                let t = match v.trim() {
                    "any" => None,
                    "eol" => Some(0),
                    "nop" => Some(1),
                    "rr" => Some(7),
                    "ts" => Some(68),
                    "sec" => Some(130),
                    "esec" => Some(133),
                    "lsrr" | "lsrre" => Some(131),
                    "ssrr" => Some(137),
                    "satid" => Some(136),
                    o => return invalid(format!("bad ipopts {o:?}")),
                };
                self.rule.packet.push(PacketCheck::IpOpt(t));
            }
            "stream_size" => {
                let parts: Vec<&str> = v.split(',').map(str::trim).collect();
                if parts.len() != 3 {
                    return invalid("stream_size needs side,op,value");
                }
                let side = match parts[0] {
                    "server" => StreamSide::Server,
                    "client" => StreamSide::Client,
                    "both" => StreamSide::Both,
                    "either" => StreamSide::Either,
                    s => return invalid(format!("bad stream_size side {s:?}")),
                };
                let cmp = parse_cmp(&format!("{}{}", parts[1], parts[2]))?;
                self.rule.packet.push(PacketCheck::StreamSize(side, cmp));
            }
            other => return unsupported(format!("keyword {other}")),
        }
        Ok(())
    }

    fn move_last_content(&mut self, buf: Buf) -> PResult<()> {
        let Some((li, mi)) = self.last_content else {
            return invalid("content modifier without a preceding content");
        };
        if self.rule.lists[li].buf == buf {
            return Ok(());
        }
        let m = self.rule.lists[li].matches.remove(mi);
        if self.rule.lists[li].matches.is_empty() {
            self.rule.lists.remove(li);
        }
        let nl = self.list_for(buf, &[]);
        self.rule.lists[nl].matches.push(m);
        self.last_content = Some((nl, self.rule.lists[nl].matches.len() - 1));
        Ok(())
    }

    fn flow(&mut self, v: &str) -> PResult<()> {
        for p in v.split(',').map(str::trim) {
            match p {
                "to_server" | "from_client" => self.rule.flow.to_server = Some(true),
                "to_client" | "from_server" => self.rule.flow.to_server = Some(false),
                "established" => self.rule.flow.established = Some(true),
                "not_established" => self.rule.flow.established = Some(false),
                "stateless" => self.rule.flow.stateless = true,
                "only_stream" => self.rule.flow.only_stream = true,
                "no_stream" => self.rule.flow.no_stream = true,
                "no_frag" | "only_frag" => return unsupported(format!("flow:{p}")),
                "" => {}
                o => return invalid(format!("bad flow option {o:?}")),
            }
        }
        Ok(())
    }

    fn flowbits(&mut self, v: &str) -> PResult<()> {
        let (op, arg) = match v.split_once(',') {
            Some((o, a)) => (o.trim(), a.trim()),
            None => (v.trim(), ""),
        };
        if op == "noalert" {
            self.rule.noalert = true;
            return Ok(());
        }
        if arg.is_empty() {
            return invalid(format!("flowbits:{op} needs a name"));
        }
        let names: Vec<&str> = arg.split(['|', '&']).map(str::trim).collect();
        let and = arg.contains('&');
        let ids: Vec<u32> = names.iter().map(|n| self.names.flowbit(n)).collect();
        let one = |ids: &[u32]| -> PResult<u32> {
            match ids {
                [i] => Ok(*i),
                _ => invalid("flowbits set/unset/toggle take one name"),
            }
        };
        match op {
            "set" => self.rule.flowbits.push(FlowbitOp::Set(one(&ids)?)),
            "unset" => self.rule.flowbits.push(FlowbitOp::Unset(one(&ids)?)),
            "toggle" => self.rule.flowbits.push(FlowbitOp::Toggle(one(&ids)?)),
            "isset" if and => {
                for i in ids {
                    self.rule.flowbits.push(FlowbitOp::IsSet(vec![i]));
                }
            }
            "isset" => self.rule.flowbits.push(FlowbitOp::IsSet(ids)),
            "isnotset" if and => {
                for i in ids {
                    self.rule.flowbits.push(FlowbitOp::IsNotSet(vec![i]));
                }
            }
            "isnotset" => self.rule.flowbits.push(FlowbitOp::IsNotSet(ids)),
            o => return invalid(format!("bad flowbits op {o:?}")),
        }
        Ok(())
    }

    fn byte_test(&mut self, v: &str) -> PResult<Match> {
        let parts: Vec<&str> = v.split(',').map(str::trim).collect();
        if parts.len() < 4 {
            return invalid("byte_test needs nbytes,op,value,offset");
        }
        let nbytes = parse_int(parts[0])? as usize;
        let (negated, op) = match parts[1].strip_prefix('!') {
            Some(r) => (true, r),
            None => (false, parts[1]),
        };
        let (op, negated) = match op {
            "<" => (ByteOp::Lt, negated),
            ">" => (ByteOp::Gt, negated),
            "<=" => (ByteOp::Le, negated),
            ">=" => (ByteOp::Ge, negated),
            "=" | "" => (ByteOp::Eq, negated || op.is_empty()),
            "&" => (ByteOp::And, negated),
            "^" => (ByteOp::Xor, negated),
            o => return invalid(format!("bad byte_test operator {o:?}")),
        };
        let value = self.num(parts[2])?;
        let offset = self.num(parts[3])?;
        let (flags, bitmask) = self.byte_flags(&parts[4..])?;
        if nbytes > 23 || (flags.format_is_binary() && !(1..=8).contains(&nbytes)) {
            return invalid(format!("byte_test nbytes {nbytes} out of range"));
        }
        Ok(Match::ByteTest(ByteTest {
            nbytes,
            op,
            negated,
            value,
            offset,
            relative: flags.relative,
            format: flags.format,
            bitmask,
        }))
    }

    fn byte_jump(&mut self, v: &str) -> PResult<Match> {
        let parts: Vec<&str> = v.split(',').map(str::trim).collect();
        if parts.len() < 2 {
            return invalid("byte_jump needs nbytes,offset");
        }
        let nbytes = parse_int(parts[0])? as usize;
        let offset = self.num(parts[1])?;
        let (f, bitmask) = self.byte_flags(&parts[2..])?;
        // nbytes 0 jumps by post_offset alone.
        if nbytes > 23 || (f.format_is_binary() && nbytes > 8) {
            return invalid(format!("byte_jump nbytes {nbytes} out of range"));
        }
        Ok(Match::ByteJump(ByteJump {
            nbytes,
            offset,
            relative: f.relative,
            format: f.format,
            multiplier: f.multiplier,
            align: f.align != 0,
            from_beginning: f.from_beginning,
            from_end: f.from_end,
            post_offset: f.post_offset,
            bitmask,
        }))
    }

    fn byte_extract(&mut self, v: &str) -> PResult<Match> {
        let parts: Vec<&str> = v.split(',').map(str::trim).collect();
        if parts.len() < 3 {
            return invalid("byte_extract needs nbytes,offset,name");
        }
        let nbytes = parse_int(parts[0])? as usize;
        let offset = parse_int(parts[1])?;
        let name = parts[2].to_string();
        let (f, bitmask) = self.byte_flags(&parts[3..])?;
        if !(1..=23).contains(&nbytes) || (f.format_is_binary() && nbytes > 8) {
            return invalid(format!("byte_extract nbytes {nbytes} out of range"));
        }
        if self.vars.len() >= 8 {
            return unsupported("more than 8 byte_extract variables");
        }
        let var = match self.vars.iter().position(|v| *v == name) {
            Some(i) => i as u8,
            None => {
                self.vars.push(name);
                (self.vars.len() - 1) as u8
            }
        };
        self.rule.nvars = self.vars.len() as u8;
        Ok(Match::ByteExtract(ByteExtract {
            nbytes,
            offset,
            var,
            relative: f.relative,
            format: f.format,
            multiplier: f.multiplier,
            align: f.align,
            bitmask,
        }))
    }

    fn byte_flags(&self, parts: &[&str]) -> PResult<(ByteFlags, Option<u64>)> {
        let mut f = ByteFlags {
            relative: false,
            format: NumFormat::Big,
            string: false,
            multiplier: 1,
            align: 0,
            from_beginning: false,
            from_end: false,
            post_offset: 0,
        };
        let mut bitmask = None;
        let mut base: Option<NumFormat> = None;
        for p in parts {
            let mut w = p.split_whitespace();
            let k = w.next().unwrap_or("");
            let arg = w.next();
            match k {
                "relative" => f.relative = true,
                "big" => f.format = NumFormat::Big,
                "little" => f.format = NumFormat::Little,
                "string" => f.string = true,
                "hex" => base = Some(NumFormat::Hex),
                "dec" => base = Some(NumFormat::Dec),
                "oct" => base = Some(NumFormat::Oct),
                "align" => f.align = 4,
                "from_beginning" => f.from_beginning = true,
                "from_end" => f.from_end = true,
                "dce" => return unsupported("byte_* dce"),
                "multiplier" => {
                    f.multiplier = parse_int(arg.unwrap_or(""))? as u64;
                }
                "post_offset" => f.post_offset = parse_int(arg.unwrap_or(""))?,
                "bitmask" => bitmask = Some(parse_int(arg.unwrap_or(""))? as u64),
                "" => {}
                o => {
                    if let Some(a) = o.strip_prefix("align") {
                        f.align = parse_int(a)? as u64;
                    } else {
                        return invalid(format!("bad byte_* option {o:?}"));
                    }
                }
            }
        }
        if f.string {
            f.format = base.unwrap_or(NumFormat::Dec);
        }
        Ok((f, bitmask))
    }

    fn finish(mut self) -> PResult<Rule> {
        if !self.has_sid {
            return invalid("rule has no sid");
        }
        // startswith is depth = pattern length at offset 0.
        for l in &mut self.rule.lists {
            for m in &mut l.matches {
                if let Match::Content(c) = m {
                    if c.startswith && c.relative() {
                        return invalid("startswith with distance/within");
                    }
                }
            }
        }
        if self.rule.header.app.is_none() {
            // Sticky buffers of an application protocol make the rule that protocol's.
            if self.rule.uses_buf(Buf::is_http) {
                self.rule.header.app = Some(AppProto::Http);
            } else if self.rule.uses_buf(Buf::is_dns) {
                self.rule.header.app = Some(AppProto::Dns);
            } else if self.rule.uses_buf(Buf::is_tls) {
                self.rule.header.app = Some(AppProto::Tls);
            }
        }
        let app = self.rule.header.app;
        for l in &self.rule.lists {
            let ok = match l.buf {
                b if b.is_http() => app == Some(AppProto::Http),
                b if b.is_dns() => app == Some(AppProto::Dns),
                b if b.is_tls() => app == Some(AppProto::Tls),
                _ => true,
            };
            if !ok {
                if app.is_some_and(|a| !matches!(a, AppProto::Http | AppProto::Dns | AppProto::Tls))
                {
                    return unsupported(format!(
                        "{:?} buffer on {:?}",
                        l.buf,
                        app.unwrap_or(AppProto::Http)
                    ));
                }
                return invalid(format!("buffer {:?} in a rule for {:?}", l.buf, app));
            }
        }
        Ok(self.rule)
    }
}

struct ByteFlags {
    relative: bool,
    format: NumFormat,
    string: bool,
    multiplier: u64,
    align: u64,
    from_beginning: bool,
    from_end: bool,
    post_offset: i64,
}

impl ByteFlags {
    fn format_is_binary(&self) -> bool {
        matches!(self.format, NumFormat::Big | NumFormat::Little)
    }
}

fn parse_threshold(v: &str, filter: bool) -> PResult<Threshold> {
    let mut kind = if filter {
        Some(ThresholdKind::DetectionFilter)
    } else {
        None
    };
    let mut track = None;
    let mut count = None;
    let mut seconds = None;
    for p in v.split(',') {
        let mut w = p.split_whitespace();
        let k = w.next().unwrap_or("");
        let a = w.next().unwrap_or("");
        match k {
            "type" if !filter => {
                kind = Some(match a {
                    "limit" => ThresholdKind::Limit,
                    "threshold" => ThresholdKind::Threshold,
                    "both" => ThresholdKind::Both,
                    o => return invalid(format!("bad threshold type {o:?}")),
                })
            }
            "track" => {
                track = Some(match a {
                    "by_src" => Track::BySrc,
                    "by_dst" => Track::ByDst,
                    "by_rule" => Track::ByRule,
                    "by_both" => Track::ByBoth,
                    "by_flow" => Track::ByFlow,
                    o => return invalid(format!("bad track {o:?}")),
                })
            }
            "count" => count = Some(parse_int(a)? as u32),
            "seconds" => seconds = Some(parse_int(a)? as u32),
            "" => {}
            o => return invalid(format!("bad threshold option {o:?}")),
        }
    }
    match (kind, track, count, seconds) {
        (Some(kind), Some(track), Some(count), Some(seconds)) => Ok(Threshold {
            kind,
            track,
            count,
            seconds,
        }),
        _ => invalid("threshold needs type, track, count and seconds"),
    }
}

fn parse_flags(v: &str) -> PResult<PacketCheck> {
    let (f, ignore) = match v.split_once(',') {
        Some((f, i)) => (f.trim(), i.trim()),
        None => (v.trim(), ""),
    };
    let bit = |c: char| -> PResult<u8> {
        use crate::decode::tcp_flags::*;
        Ok(match c {
            'F' | 'f' => FIN,
            'S' | 's' => SYN,
            'R' | 'r' => RST,
            'P' | 'p' => PSH,
            'A' | 'a' => ACK,
            'U' | 'u' => URG,
            'C' | 'c' | '1' => CWR,
            'E' | 'e' | '2' => ECE,
            '0' => 0,
            o => return invalid(format!("bad TCP flag {o:?}")),
        })
    };
    let mut mode = FlagMode::Exact;
    let mut bits = 0u8;
    for c in f.chars() {
        match c {
            '+' => mode = FlagMode::All,
            '*' => mode = FlagMode::Any,
            '!' => mode = FlagMode::Not,
            c if c.is_whitespace() => {}
            c => bits |= bit(c)?,
        }
    }
    let mut ign = 0u8;
    for c in ignore.chars().filter(|c| !c.is_whitespace()) {
        ign |= bit(c)?;
    }
    Ok(PacketCheck::Flags {
        bits,
        mode,
        ignore: ign,
    })
}

fn parse_fragbits(v: &str) -> PResult<(u8, FlagMode)> {
    let mut mode = FlagMode::Exact;
    let mut bits = 0;
    for c in v.trim().chars() {
        match c {
            '+' => mode = FlagMode::All,
            '*' => mode = FlagMode::Any,
            '!' => mode = FlagMode::Not,
            'M' => bits |= 1,
            'D' => bits |= 2,
            'R' => bits |= 4,
            o => return invalid(format!("bad fragbit {o:?}")),
        }
    }
    Ok((bits, mode))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> PResult<Rule> {
        parse_rule(s, &Vars::default(), &mut Names::default())
    }

    #[test]
    fn header_and_meta() {
        let r = parse(
            r#"alert http $HOME_NET any -> $EXTERNAL_NET $HTTP_PORTS (msg:"ET x \"q\"\; y"; flow:established,to_server; http.uri; content:"/a|3b|b"; nocase; classtype:trojan-activity; sid:2000001; rev:3; metadata:created_at 2010_07_30, updated_at 2020_01_01, created_at 2011;)"#,
        )
        .unwrap();
        assert_eq!(r.sid, 2000001);
        assert_eq!(r.rev, 3);
        assert_eq!(r.msg, "ET x \"q\"; y");
        assert_eq!(r.header.app, Some(AppProto::Http));
        assert_eq!(r.flow.to_server, Some(true));
        assert_eq!(r.flow.established, Some(true));
        assert_eq!(r.lists.len(), 1);
        assert_eq!(r.lists[0].buf, Buf::HttpUri);
        match &r.lists[0].matches[0] {
            Match::Content(c) => {
                assert_eq!(c.pattern, b"/a;b");
                assert!(c.nocase);
            }
            m => panic!("{m:?}"),
        }
        assert_eq!(r.metadata.len(), 3);
        assert!(r.header.dport.matches(80) && !r.header.dport.matches(81));
    }

    #[test]
    fn dns_opcode_compares_the_opcode() {
        let eq = parse(r#"alert dns any any -> any any (dns.opcode:4; sid:1;)"#).unwrap();
        let ne = parse(r#"alert udp any any -> any any (dns.opcode:!0; sid:2;)"#).unwrap();
        assert_eq!(ne.header.app, Some(AppProto::Dns));
        let hit = |r: &Rule, op: u8| {
            let mut vars = [0; 8];
            crate::detect::inspect::inspect(&r.lists[0].matches, &[op], &mut vars, None)
        };
        assert_eq!(eq.lists[0].buf, Buf::DnsOpcode);
        assert!(hit(&eq, 4) && !hit(&eq, 0) && !hit(&eq, 5));
        assert!(hit(&ne, 4) && !hit(&ne, 0));
    }

    #[test]
    fn enip_command_compares_the_command() {
        let r = parse(r#"alert enip any any -> any any (enip_command:99; sid:1;)"#).unwrap();
        assert_eq!(r.header.app, Some(AppProto::Enip));
        assert_eq!(r.lists[0].buf, Buf::EnipCommand);
        let hit = |cmd: u16| {
            let mut vars = [0; 8];
            crate::detect::inspect::inspect(
                &r.lists[0].matches,
                &cmd.to_be_bytes(),
                &mut vars,
                None,
            )
        };
        assert!(hit(99) && !hit(0x6f) && !hit(99 << 8));
    }

    #[test]
    fn legacy_modifiers_move_content() {
        let r = parse(
            r#"alert tcp any any -> any any (content:"foo"; http_uri; content:"bar"; sid:1;)"#,
        )
        .unwrap();
        assert_eq!(r.lists.len(), 2);
        assert!(r.lists.iter().any(|l| l.buf == Buf::HttpUri));
        assert!(r.lists.iter().any(|l| l.buf == Buf::Payload));
        assert_eq!(r.header.app, Some(AppProto::Http));
    }

    #[test]
    fn unsupported_is_named() {
        let e = parse(r#"alert tcp any any -> any any (xbits:set,a,track ip_src; sid:1;)"#)
            .unwrap_err();
        assert_eq!(e, ParseError::Unsupported("keyword xbits".into()));
        let e = parse(r#"alert smb any any -> any any (content:"a"; sid:1;)"#).unwrap_err();
        assert_eq!(e, ParseError::Unsupported("protocol smb".into()));
        let e = parse(r#"alert tcp $NOPE any -> any any (content:"a"; sid:1;)"#).unwrap_err();
        assert!(matches!(e, ParseError::Unsupported(_)));
    }

    #[test]
    fn invalid_is_an_error() {
        assert!(matches!(
            parse(r#"alert tcp any any -> any any (content:"a|4|"; sid:1;)"#),
            Err(ParseError::Invalid(_))
        ));
        assert!(matches!(
            parse(r#"alert tcp any any -> any any (content:"a"; sid:1"#),
            Err(ParseError::Invalid(_))
        ));
        assert!(matches!(
            parse(r#"alert tcp any any any -> any (content:"a"; sid:1;)"#),
            Err(ParseError::Invalid(_))
        ));
        assert!(matches!(
            parse(r#"alert tcp any any -> any any (nocase; sid:1;)"#),
            Err(ParseError::Invalid(_))
        ));
    }

    #[test]
    fn options_of_every_family() {
        let r = parse(
            r#"alert tcp any any -> any 445 (flow:established,to_server; content:"|ff|SMB"; depth:8; content:"|09 00|"; distance:8; within:2; isdataat:!4,relative; byte_test:1,!&,0x80,0,relative; byte_jump:2,-4,relative,from_beginning,little; byte_extract:2,0,len,relative; pcre:"/^\x00/R"; dsize:>10; flags:PA,12; flowbits:set,a.b; flowbits:noalert; threshold: type limit, track by_src, count 1, seconds 60; sid:7;)"#,
        )
        .unwrap();
        assert_eq!(r.lists[0].matches.len(), 7);
        assert_eq!(r.packet.len(), 2);
        assert!(r.noalert);
        assert_eq!(r.nvars, 1);
        assert_eq!(r.threshold.unwrap().count, 1);
    }

    #[test]
    fn transforms_attach_to_the_sticky_buffer() {
        let r = parse(
            r#"alert dns any any -> any any (dns.query; dotprefix; content:".evil.com"; endswith; bsize:>9; sid:9;)"#,
        )
        .unwrap();
        assert_eq!(r.lists[0].transforms, vec![Transform::DotPrefix]);
        assert_eq!(r.lists[0].matches.len(), 2);
    }

    #[test]
    fn cmp_forms() {
        assert_eq!(parse_cmp("5").unwrap(), Cmp::Eq(5));
        assert_eq!(parse_cmp("<5").unwrap(), Cmp::Lt(5));
        assert_eq!(parse_cmp(">=5").unwrap(), Cmp::Ge(5));
        assert_eq!(parse_cmp("3<>9").unwrap(), Cmp::Between(3, 9));
        assert!(parse_cmp("x").is_err());
    }
}

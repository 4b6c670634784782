//! The model of a loaded signature: what the parser produces and the engine evaluates.

use super::vars::{AddrExpr, PortExpr};

/// Application protocols the detector tells apart (rule headers, `app-layer-protocol`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AppProto {
    Http,
    Dns,
    Tls,
    Smtp,
    Ftp,
    Ssh,
    /// EtherNet/IP encapsulation (TCP and UDP 44818).
    Enip,
}

impl AppProto {
    pub fn parse(s: &str) -> Option<AppProto> {
        Some(match s {
            "http" | "http1" => AppProto::Http,
            "dns" => AppProto::Dns,
            "tls" | "ssl" => AppProto::Tls,
            "smtp" => AppProto::Smtp,
            "ftp" => AppProto::Ftp,
            "ssh" => AppProto::Ssh,
            "enip" => AppProto::Enip,
            _ => return None,
        })
    }

    /// The EVE `app_proto` name.
    pub fn name(self) -> &'static str {
        match self {
            AppProto::Http => "http",
            AppProto::Dns => "dns",
            AppProto::Tls => "tls",
            AppProto::Smtp => "smtp",
            AppProto::Ftp => "ftp",
            AppProto::Ssh => "ssh",
            AppProto::Enip => "enip",
        }
    }
}

/// The transport a rule header names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    Ip,
    /// TCP packets and the reassembled stream.
    Tcp,
    /// TCP packets only.
    TcpPkt,
    /// The reassembled TCP stream only.
    TcpStream,
    Udp,
    /// ICMP of either IP version (Suricata's `icmp`).
    Icmp,
    Icmpv4,
    Icmpv6,
}

#[derive(Clone, Debug)]
pub struct Header {
    pub proto: Proto,
    /// Set for `alert http|dns|tls...` headers: the flow must carry this protocol.
    pub app: Option<AppProto>,
    pub src: AddrExpr,
    pub sport: PortExpr,
    pub dst: AddrExpr,
    pub dport: PortExpr,
    /// `<>`: either orientation.
    pub bidir: bool,
}

/// Where content is looked for: the packet (or stream) payload or a sticky buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Buf {
    Payload,
    HttpUri,
    HttpUriRaw,
    HttpMethod,
    HttpProtocol,
    HttpRequestLine,
    HttpStart,
    HttpHost,
    HttpHostRaw,
    HttpHeader,
    HttpHeaderRaw,
    HttpHeaderNames,
    HttpUserAgent,
    HttpCookie,
    HttpReferer,
    HttpContentType,
    HttpContentLen,
    HttpAccept,
    HttpAcceptEnc,
    HttpAcceptLang,
    HttpConnection,
    HttpLocation,
    HttpServer,
    HttpRequestBody,
    HttpResponseBody,
    /// `file.data`: the response body to the client, the request body to the server.
    FileData,
    HttpStatCode,
    HttpStatMsg,
    HttpResponseLine,
    /// Each request header as `Name: value` in turn.
    HttpRequestHeader,
    /// Each response header as `Name: value` in turn.
    HttpResponseHeader,
    DnsQuery,
    /// `dns.opcode`: the message's opcode as one byte.
    DnsOpcode,
    /// `enip_command`: the EtherNet/IP encapsulation command (big-endian, two bytes).
    EnipCommand,
    TlsSni,
    TlsCertSubject,
    TlsCertIssuer,
    TlsCertSerial,
    TlsCertFingerprint,
    /// Each certificate of the chain in turn (DER).
    TlsCerts,
    Ja3Hash,
    Ja3String,
    Ja3sHash,
    Ja3sString,
    /// Raw protocol headers (`ipv4.hdr`, `tcp.hdr`, `icmpv6.hdr`...).
    IpHdr,
    IcmpHdr,
}

/// Which side of an HTTP transaction a buffer belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Request,
    Response,
    /// Either, depending on the rule's direction (headers, bodies).
    Either,
    Other,
}

impl Buf {
    pub fn http_side(self) -> Side {
        use Buf::*;
        match self {
            HttpUri | HttpUriRaw | HttpMethod | HttpRequestLine | HttpHost | HttpHostRaw
            | HttpUserAgent | HttpReferer | HttpAccept | HttpAcceptEnc | HttpAcceptLang
            | HttpRequestBody | HttpRequestHeader => Side::Request,
            HttpStatCode | HttpStatMsg | HttpResponseLine | HttpResponseBody | HttpLocation
            | HttpServer | HttpResponseHeader => Side::Response,
            HttpProtocol | HttpStart | HttpHeader | HttpHeaderRaw | HttpHeaderNames
            | HttpCookie | HttpContentType | HttpContentLen | HttpConnection | FileData => {
                Side::Either
            }
            _ => Side::Other,
        }
    }

    pub fn is_http(self) -> bool {
        self.http_side() != Side::Other
    }

    pub fn is_dns(self) -> bool {
        matches!(self, Buf::DnsQuery | Buf::DnsOpcode)
    }

    pub fn is_tls(self) -> bool {
        use Buf::*;
        matches!(
            self,
            TlsSni
                | TlsCertSubject
                | TlsCertIssuer
                | TlsCertSerial
                | TlsCertFingerprint
                | TlsCerts
                | Ja3Hash
                | Ja3String
                | Ja3sHash
                | Ja3sString
        )
    }

    /// TLS buffers filled from the server's messages.
    pub fn is_tls_server(self) -> bool {
        use Buf::*;
        matches!(
            self,
            TlsCertSubject
                | TlsCertIssuer
                | TlsCertSerial
                | TlsCertFingerprint
                | TlsCerts
                | Ja3sHash
                | Ja3sString
        )
    }

    pub fn is_header_buf(self) -> bool {
        matches!(self, Buf::IpHdr | Buf::IcmpHdr)
    }
}

/// A buffer transform (applied in rule order before inspection).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Transform {
    ToLowercase,
    ToUppercase,
    StripWhitespace,
    CompressWhitespace,
    UrlDecode,
    DotPrefix,
    HeaderLowercase,
    Xor,
}

/// Comparison of an integer (bsize, dsize, urilen, itype, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cmp {
    Eq(u64),
    Ne(u64),
    Lt(u64),
    Le(u64),
    Gt(u64),
    Ge(u64),
    /// Exclusive range `a<>b`.
    Between(u64, u64),
}

impl Cmp {
    pub fn test(self, v: u64) -> bool {
        match self {
            Cmp::Eq(a) => v == a,
            Cmp::Ne(a) => v != a,
            Cmp::Lt(a) => v < a,
            Cmp::Le(a) => v <= a,
            Cmp::Gt(a) => v > a,
            Cmp::Ge(a) => v >= a,
            Cmp::Between(a, b) => v > a && v < b,
        }
    }
}

/// A number written in a rule, or a `byte_extract` variable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Num {
    Lit(i64),
    Var(u8),
}

#[derive(Clone, Debug, Default)]
pub struct Content {
    pub pattern: Vec<u8>,
    pub nocase: bool,
    pub negated: bool,
    pub offset: Option<Num>,
    pub depth: Option<Num>,
    pub distance: Option<Num>,
    pub within: Option<Num>,
    pub startswith: bool,
    pub endswith: bool,
    pub fast_pattern: bool,
    /// `fast_pattern:offset,length`: only this part goes into the prefilter.
    pub fp_chop: Option<(usize, usize)>,
}

impl Content {
    pub fn relative(&self) -> bool {
        self.distance.is_some() || self.within.is_some()
    }
}

#[derive(Clone, Debug)]
pub struct Pcre {
    pub re: regex::bytes::Regex,
    pub negated: bool,
    pub relative: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NumFormat {
    Big,
    Little,
    Dec,
    Hex,
    Oct,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ByteOp {
    Lt,
    Gt,
    Le,
    Ge,
    Eq,
    And,
    Xor,
}

#[derive(Clone, Debug)]
pub struct ByteTest {
    pub nbytes: usize,
    pub op: ByteOp,
    pub negated: bool,
    pub value: Num,
    pub offset: Num,
    pub relative: bool,
    pub format: NumFormat,
    pub bitmask: Option<u64>,
}

#[derive(Clone, Debug)]
pub struct ByteJump {
    pub nbytes: usize,
    pub offset: Num,
    pub relative: bool,
    pub format: NumFormat,
    pub multiplier: u64,
    pub align: bool,
    pub from_beginning: bool,
    pub from_end: bool,
    pub post_offset: i64,
    pub bitmask: Option<u64>,
}

#[derive(Clone, Debug)]
pub struct ByteExtract {
    pub nbytes: usize,
    pub offset: i64,
    pub var: u8,
    pub relative: bool,
    pub format: NumFormat,
    pub multiplier: u64,
    pub align: u64,
    pub bitmask: Option<u64>,
}

/// One step of a buffer's inspection list, in rule order.
#[derive(Clone, Debug)]
pub enum Match {
    Content(Content),
    Pcre(Pcre),
    IsDataAt {
        n: Num,
        relative: bool,
        negated: bool,
    },
    ByteTest(ByteTest),
    ByteJump(ByteJump),
    ByteExtract(ByteExtract),
    Bsize(Cmp),
    /// A numeric field's buffer (big-endian, e.g. `dns.opcode`, `enip_command`) compared
    /// as a number.
    Value(Cmp),
}

impl Match {
    /// Whether this step depends on where the previous match ended.
    pub fn relative(&self) -> bool {
        match self {
            Match::Content(c) => c.relative(),
            Match::Pcre(p) => p.relative,
            Match::IsDataAt { relative, .. } => *relative,
            Match::ByteTest(b) => b.relative,
            Match::ByteJump(b) => b.relative,
            Match::ByteExtract(b) => b.relative,
            Match::Bsize(_) | Match::Value(_) => false,
        }
    }
}

/// All inspection steps of one buffer (after its transforms).
#[derive(Clone, Debug)]
pub struct BufList {
    pub buf: Buf,
    pub transforms: Vec<Transform>,
    pub matches: Vec<Match>,
}

/// Checks on the packet rather than its payload.
#[derive(Clone, Debug)]
pub enum PacketCheck {
    Dsize(Cmp),
    Ttl(Cmp),
    Itype(Cmp),
    Icode(Cmp),
    IcmpId(u16),
    IcmpSeq(u16),
    IpProto(u8, bool),
    /// `flags`: required bits, mode, and the bits ignored (`flags:S,12`).
    Flags {
        bits: u8,
        mode: FlagMode,
        ignore: u8,
    },
    Seq(u32),
    Ack(u32),
    Window(u16, bool),
    IpId(u16),
    /// An IPv4 option by type, or any option.
    IpOpt(Option<u8>),
    FragBits {
        bits: u8,
        mode: FlagMode,
    },
    /// `stream_size`: which side's byte count, compared.
    StreamSize(StreamSide, Cmp),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlagMode {
    /// Exactly these bits (of those not ignored).
    Exact,
    /// At least these bits (`+`).
    All,
    /// Any of these bits (`*`).
    Any,
    /// None of these bits (`!`).
    Not,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamSide {
    Server,
    Client,
    Both,
    Either,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowOpts {
    /// Some(true) = to_server / from_client; Some(false) = to_client / from_server.
    pub to_server: Option<bool>,
    /// Some(true) = established; Some(false) = not_established; None = don't care.
    pub established: Option<bool>,
    pub stateless: bool,
    pub only_stream: bool,
    pub no_stream: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FlowbitOp {
    Set(u32),
    Unset(u32),
    Toggle(u32),
    /// Any of these bits set (`a|b`).
    IsSet(Vec<u32>),
    /// None of these bits set... Suricata's OR form: true when any is not set.
    IsNotSet(Vec<u32>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThresholdKind {
    Limit,
    Threshold,
    Both,
    /// `detection_filter`: alert only after `count` matches within the window.
    DetectionFilter,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Track {
    BySrc,
    ByDst,
    ByRule,
    ByBoth,
    ByFlow,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Threshold {
    pub kind: ThresholdKind,
    pub track: Track,
    pub count: u32,
    pub seconds: u32,
}

/// A parsed rule.
#[derive(Clone, Debug)]
pub struct Rule {
    pub action: &'static str,
    pub header: Header,
    pub sid: u32,
    pub gid: u32,
    pub rev: u32,
    pub msg: String,
    pub classtype: Option<String>,
    pub priority: Option<u8>,
    /// `metadata:` pairs split at the first space, in rule order.
    pub metadata: Vec<(String, String)>,
    pub flow: FlowOpts,
    pub lists: Vec<BufList>,
    pub packet: Vec<PacketCheck>,
    pub flowbits: Vec<FlowbitOp>,
    pub noalert: bool,
    pub threshold: Option<Threshold>,
    pub detection_filter: Option<Threshold>,
    /// `app-layer-protocol:[!]name` checks.
    pub app_layer: Vec<(AppProto, bool)>,
    /// `target:src_ip|dest_ip`: true when the source is the target.
    pub target_src: Option<bool>,
    /// Number of `byte_extract` variables the rule uses.
    pub nvars: u8,
}

impl Rule {
    pub fn uses_buf(&self, pred: impl Fn(Buf) -> bool) -> bool {
        self.lists.iter().any(|l| pred(l.buf))
    }
}

//! Signature detection: Suricata rules (the ET Open subset) evaluated inside the sensor,
//! alerts written to eve.json.
//!
//! - [`parse`] reads rule text into [`rule::Rule`]s (unsupported keywords → named skip
//!   reasons, counted in the [`LoadReport`]); [`vars`] holds address/port variables and
//!   `classification.config`.
//! - [`engine`] compiles the rules into per-inspection-point prefilters and verifies
//!   candidates; [`inspect`] is the content/pcre/byte_* matcher.
//! - [`Detector`] keeps the bounded per-connection state (TCP state, a small in-order stream
//!   window, flowbits, app protocol, TLS handshake) and is called by the analyzer stage:
//!   [`Detector::on_packet`] for every packet of a connection, and the application-layer hooks
//!   [`Detector::on_http_request`], [`Detector::on_http_response`], [`Detector::on_dns`] by
//!   the HTTP and DNS analyzers ([`feed`] adapts their transactions). TLS is parsed here
//!   ([`tls`]).
//! - [`eve`] renders alert lines.

pub mod buffers;
pub mod engine;
pub mod eve;
pub mod feed;
pub mod groups;
pub mod inspect;
pub mod literals;
pub mod parse;
pub mod pcre;
pub mod rule;
pub mod slots;
pub mod stage;
pub mod tls;
pub mod update;
pub mod vars;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::analyzers::dns::DnsAnalyzer;
use crate::analyzers::{Record, RecordSink};
use crate::config::DetectSection;
use crate::decode::{tcp_flags, Transport};
use crate::flow::{PacketView, Transport4, Uid};
use crate::stats::Stats;
use crate::ts::Ts;

pub use buffers::{DnsMessage, HttpRequest, HttpResponse};
use buffers::{DnsSource, HttpSource, PacketSource, TlsSource};
use engine::{Compiled, Facts, Point, Scratch, Source};
use rule::{AppProto, Rule, ThresholdKind, Track};
pub use tls::TlsInfo;
use vars::{Classtype, Vars};

/// Bytes of earlier in-order data kept per direction, so that content split across segments
/// still matches (the stream window).
const STREAM_TAIL: usize = 256;
/// Rules remembered per HTTP message side as matched on its headers.
const MAX_TX_MATCHES: usize = 256;
/// Payload packets per direction inspected for the application protocol before giving up.
const APP_PROBES: u8 = 4;

/// What loading a rule set found.
#[derive(Clone, Debug, Default)]
pub struct LoadReport {
    pub files: Vec<PathBuf>,
    /// Enabled rule lines (comments excluded).
    pub enabled: usize,
    pub loaded: usize,
    /// Rules skipped, by reason (`keyword xbits`, `protocol smb`, `pcre lookaround`...).
    pub skipped: BTreeMap<String, usize>,
    /// Malformed rules: `file:line: message`.
    pub invalid: Vec<String>,
    pub duplicates: usize,
    pub load_millis: u128,
    /// Rules per inspection point.
    pub per_point: Vec<(&'static str, usize)>,
    /// Distinct address and port expressions and rule headers.
    pub groups: (usize, usize, usize),
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "rule files: {}", self.files.len())?;
        for e in self.invalid.iter().take(50) {
            writeln!(f, "invalid: {e}")?;
        }
        if self.invalid.len() > 50 {
            writeln!(f, "invalid: ... {} more", self.invalid.len() - 50)?;
        }
        let mut skipped: Vec<_> = self.skipped.iter().collect();
        skipped.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        for (reason, n) in skipped {
            writeln!(f, "skipped {n:>6}  {reason}")?;
        }
        if self.duplicates > 0 {
            writeln!(f, "skipped {:>6}  duplicate sid", self.duplicates)?;
        }
        for (p, n) in &self.per_point {
            writeln!(f, "rules at {p}: {n}")?;
        }
        let (a, pt, g) = self.groups;
        writeln!(
            f,
            "header groups: {g} ({a} address and {pt} port expressions)"
        )?;
        writeln!(f, "load time: {} ms", self.load_millis)?;
        let pct = if self.enabled == 0 {
            0.0
        } else {
            100.0 * self.loaded as f64 / self.enabled as f64
        };
        write!(
            f,
            "loaded {} of {} enabled rules ({pct:.1} %)",
            self.loaded, self.enabled
        )
    }
}

/// Expands the configured rule paths (files, folders → their `*.rules`, globs).
pub fn expand_rule_paths(pats: &[String]) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for p in pats {
        let path = Path::new(p);
        if path.is_dir() {
            let mut v: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|e| format!("{p}: {e}"))?
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "rules"))
                .collect();
            v.sort();
            out.extend(v);
        } else if p.contains(['*', '?', '[']) {
            let mut v: Vec<PathBuf> = glob::glob(p)
                .map_err(|e| format!("{p}: {e}"))?
                .flatten()
                .collect();
            if v.is_empty() {
                return Err(format!("{p}: no rule file matches"));
            }
            v.sort();
            out.extend(v);
        } else if path.is_file() {
            out.push(path.to_path_buf());
        } else {
            return Err(format!("{p}: no such rule file"));
        }
    }
    Ok(out)
}

/// The rule set, its variables and classifications, ready to evaluate.
pub struct RuleSet {
    compiled: Compiled,
    /// Pre-rendered `alert` object members per rule.
    rule_json: Vec<String>,
    pub report: LoadReport,
}

impl RuleSet {
    /// Loads rule files with the configured variables and classification file.
    pub fn load(cfg: &DetectSection) -> Result<RuleSet, String> {
        let started = std::time::Instant::now();
        let files = expand_rule_paths(&cfg.rules)?;
        let vars = vars_of(cfg)?;
        let classes = match &cfg.classification_file {
            Some(p) => {
                let text =
                    std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
                let (m, errs) = vars::parse_classification(&text);
                for e in errs {
                    log::warn!("{}: {e}", p.display());
                }
                m
            }
            None => HashMap::new(),
        };
        let mut texts = Vec::new();
        for f in &files {
            let t = std::fs::read(f).map_err(|e| format!("{}: {e}", f.display()))?;
            texts.push((
                f.display().to_string(),
                String::from_utf8_lossy(&t).into_owned(),
            ));
        }
        let refs: Vec<(&str, &str)> = texts
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        let mut rs = RuleSet::from_texts(&refs, &vars, &classes);
        rs.report.files = files;
        rs.report.load_millis = started.elapsed().as_millis();
        Ok(rs)
    }

    /// Builds a rule set from `(name, text)` pairs.
    pub fn from_texts(
        texts: &[(&str, &str)],
        vars: &Vars,
        classes: &HashMap<String, Classtype>,
    ) -> RuleSet {
        let mut report = LoadReport::default();
        let mut names = parse::Names::default();
        let mut rules: Vec<Rule> = Vec::new();
        let mut sids: std::collections::HashSet<(u32, u32)> = std::collections::HashSet::new();
        for (name, text) in texts {
            let mut pending = String::new();
            let mut start_line = 0;
            for (n, line) in text.lines().enumerate() {
                let l = line.trim_end();
                if pending.is_empty() {
                    start_line = n + 1;
                    let t = l.trim_start();
                    if t.is_empty() || t.starts_with('#') {
                        continue;
                    }
                }
                // A trailing backslash continues the rule on the next line.
                if let Some(cont) = l.strip_suffix('\\') {
                    pending.push_str(cont);
                    continue;
                }
                pending.push_str(l);
                let rule_text = std::mem::take(&mut pending);
                report.enabled += 1;
                match parse::parse_rule(&rule_text, vars, &mut names) {
                    Ok(r) => {
                        if !sids.insert((r.gid, r.sid)) {
                            report.duplicates += 1;
                            continue;
                        }
                        rules.push(r);
                    }
                    Err(parse::ParseError::Unsupported(reason)) => {
                        *report.skipped.entry(reason).or_default() += 1;
                    }
                    Err(parse::ParseError::Invalid(msg)) => {
                        report.invalid.push(format!("{name}:{start_line}: {msg}"));
                    }
                }
            }
        }
        report.loaded = rules.len();
        let compiled = Compiled::build(rules);
        let rule_json = compiled
            .rules
            .iter()
            .map(|r| eve::rule_json(r, classes))
            .collect();
        report.per_point = [
            ("tcp packets/stream", Point::PktTcp),
            ("udp packets", Point::PktUdp),
            ("icmp packets", Point::PktIcmp),
            ("other ip packets", Point::PktOther),
            ("http requests", Point::HttpRequest),
            ("http responses", Point::HttpResponse),
            ("dns queries", Point::Dns),
            ("tls client hello", Point::TlsClient),
            ("tls server handshake", Point::TlsServer),
        ]
        .iter()
        .map(|(n, p)| (*n, compiled.rules_at(*p)))
        .collect();
        let (a, pt, _) = compiled.groups.sizes(Point::PktTcp);
        report.groups = (a, pt, compiled.groups.len());
        RuleSet {
            compiled,
            rule_json,
            report,
        }
    }
}

/// Rule variables: Suricata's defaults, then `home_net`/`external_net`/`vars` from config.
pub fn vars_of(cfg: &DetectSection) -> Result<Vars, String> {
    let mut v = Vars::default();
    if let Some(h) = &cfg.home_net {
        v.set("HOME_NET", h);
    }
    if let Some(e) = &cfg.external_net {
        v.set("EXTERNAL_NET", e);
    }
    for (k, val) in &cfg.vars {
        v.set(k, val);
    }
    for name in ["HOME_NET", "EXTERNAL_NET"] {
        v.address(&format!("${name}"))
            .map_err(|e| format!("detect: {name}: {e}"))?;
    }
    Ok(v)
}

/// Threshold/detection_filter state of one (rule, tracked key).
#[derive(Clone, Copy, Debug)]
struct ThState {
    first: Ts,
    count: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum TrackKey {
    Ip(IpAddr),
    Pair(IpAddr, IpAddr),
    Rule,
    Flow(u32, Uid),
}

/// TCP handshake tracking and the in-order stream of each direction (0 = to server).
#[derive(Debug, Default)]
struct TcpTrack {
    syn: bool,
    synack: bool,
    established: bool,
    next: [Option<u32>; 2],
    tail: [Vec<u8>; 2],
    /// The payload prefilter's matches in each tail (valid only while the tail changes
    /// solely by a scanned window's new bytes).
    carry: [engine::StreamCarry; 2],
}

#[derive(Debug, Default)]
struct TlsConn {
    dirs: [tls::TlsDir; 2],
    info: TlsInfo,
}

/// Detection state of one connection.
#[derive(Debug)]
struct FlowState {
    uid: Uid,
    client: (IpAddr, u16),
    start: Ts,
    hash: u32,
    pkts: [u64; 2],
    bytes: [u64; 2],
    payload_bytes: [u64; 2],
    seen: [bool; 2],
    tcp: TcpTrack,
    app: Option<AppProto>,
    app_final: bool,
    probes: [u8; 2],
    bits: Vec<u32>,
    tls: Option<Box<TlsConn>>,
    /// Transactions started (requests, DNS queries) and HTTP responses seen.
    tx: u64,
    resp_tx: u64,
    /// Per HTTP side (0 = request): the transaction whose headers were inspected and the
    /// rules that matched then (not matched again when the message completes).
    http_open: [Option<u64>; 2],
    http_fired: [Vec<u32>; 2],
    /// The packet prefilter of each direction, the flow key and rule subset it is for (see
    /// [`groups`]).
    pkt_prefilter: [Option<(engine::FlowKey, groups::Subset, groups::Prefilter)>; 2],
    /// The same for application-layer events, per side (0 = to the server): the point, and
    /// whether the packet came from the client, that the prefilter is for.
    app_prefilter: [Option<(Point, bool, engine::FlowKey, groups::Prefilter)>; 2],
    /// HTTP parsed for detection only (see [`feed::attach_http`]): connections the HTTP
    /// analyzer does not read.
    http: Option<Box<crate::analyzers::http::HttpConn>>,
}

impl FlowState {
    fn new(uid: Uid, start: Ts, hash: u32, client: (IpAddr, u16)) -> FlowState {
        FlowState {
            uid,
            client,
            start,
            hash,
            pkts: [0; 2],
            bytes: [0; 2],
            payload_bytes: [0; 2],
            seen: [false; 2],
            tcp: TcpTrack::default(),
            app: None,
            app_final: false,
            probes: [0; 2],
            bits: Vec::new(),
            tls: None,
            tx: 0,
            resp_tx: 0,
            http_open: [None; 2],
            http_fired: [Vec::new(), Vec::new()],
            pkt_prefilter: [None; 2],
            app_prefilter: [None; 2],
            http: None,
        }
    }
}

impl slots::SlotState for FlowState {
    fn uid(&self) -> Uid {
        self.uid
    }
}

impl FlowState {
    /// Becomes `fresh`, keeping the buffers' allocations (states are reused, see [`slots`]).
    fn refill(&mut self, fresh: FlowState) {
        let mut used = std::mem::replace(self, fresh);
        for d in 0..2 {
            used.tcp.tail[d].clear();
            self.tcp.tail[d] = std::mem::take(&mut used.tcp.tail[d]);
            used.http_fired[d].clear();
            self.http_fired[d] = std::mem::take(&mut used.http_fired[d]);
        }
        used.bits.clear();
        self.bits = used.bits;
    }

    /// `client` is the client after all: every per-direction record changes sides.
    fn reverse(&mut self, client: (IpAddr, u16)) {
        self.client = client;
        self.pkts.swap(0, 1);
        self.bytes.swap(0, 1);
        self.payload_bytes.swap(0, 1);
        self.seen.swap(0, 1);
        self.probes.swap(0, 1);
        self.tcp.next.swap(0, 1);
        self.tcp.tail.swap(0, 1);
        self.tcp.carry.swap(0, 1);
        self.pkt_prefilter.swap(0, 1);
    }
}

/// The detector: a loaded rule set plus bounded per-connection and threshold state.
pub struct Detector {
    rules: RuleSet,
    /// Boxed: the table holds `max_flows` at most, the states come as connections do.
    flows: slots::SlotTable<FlowState>,
    thresholds: HashMap<(u32, TrackKey), ThState>,
    max_thresholds: usize,
    scratch: Scratch,
    groups: groups::GroupCache,
    midstream: bool,
    in_iface: Option<String>,
    /// Put `pcap_cnt` (the packet counter) into alerts: replays.
    pcap_cnt: bool,
    /// 1-based number of the frame being processed (see [`Detector::frame`]).
    frame_no: u64,
    /// Reused for the stream window of each packet.
    window: Vec<u8>,
    stats: Arc<Stats>,
}

/// The packet's source and destination endpoints (ports 0 without TCP/UDP).
fn endpoints(v: &PacketView<'_, '_>) -> ((IpAddr, u16), (IpAddr, u16)) {
    let (sp, dp) = match &v.layer.transport {
        Transport::Tcp(t) => (t.src_port, t.dst_port),
        Transport::Udp(u) => (u.src_port, u.dst_port),
        _ => (0, 0),
    };
    ((v.layer.src, sp), (v.layer.dst, dp))
}

/// Suricata's client: the sender of the connection's first packet (the receiver, when that
/// packet is a SYN-ACK). The flow stage's originator can differ (Zeek flips roles by port).
fn client_of(v: &PacketView<'_, '_>) -> (IpAddr, u16) {
    let (src, dst) = endpoints(v);
    match &v.layer.transport {
        Transport::Tcp(t)
            if t.flags & (tcp_flags::SYN | tcp_flags::ACK) == tcp_flags::SYN | tcp_flags::ACK =>
        {
            dst
        }
        _ => src,
    }
}

fn flow_hash(v: &PacketView<'_, '_>) -> u32 {
    // FNV-1a over the oriented 5-tuple: stable for the flow's life.
    let mut h: u32 = 0x811c9dc5;
    let mut eat = |b: &[u8]| {
        for &x in b {
            h ^= x as u32;
            h = h.wrapping_mul(0x01000193);
        }
    };
    for (a, p) in [v.orig, v.resp] {
        match a {
            IpAddr::V4(x) => eat(&x.octets()),
            IpAddr::V6(x) => eat(&x.octets()),
        }
        eat(&p.to_be_bytes());
    }
    eat(&[v.layer.proto]);
    h
}

impl Detector {
    pub fn new(rules: RuleSet, cfg: &DetectSection, stats: Arc<Stats>) -> Detector {
        Detector {
            rules,
            flows: slots::SlotTable::new(cfg.max_flows),
            thresholds: HashMap::new(),
            max_thresholds: cfg.max_threshold_entries,
            scratch: Scratch::default(),
            groups: groups::GroupCache::default(),
            midstream: cfg.midstream,
            in_iface: None,
            pcap_cnt: false,
            frame_no: 0,
            window: Vec::with_capacity(STREAM_TAIL + 2048),
            stats,
        }
    }

    /// Loads the configured rules; `Ok(None)` when detection is off or has no rules.
    pub fn from_config(cfg: &DetectSection, stats: Arc<Stats>) -> Result<Option<Detector>, String> {
        if !cfg.enabled || cfg.rules.is_empty() {
            return Ok(None);
        }
        let rs = RuleSet::load(cfg)?;
        Ok(Some(Detector::new(rs, cfg, stats)))
    }

    pub fn report(&self) -> &LoadReport {
        &self.rules.report
    }

    /// Live capture: alerts name the interface.
    pub fn set_interface(&mut self, name: &str) {
        self.in_iface = Some(name.to_string());
    }

    /// Replays: alerts carry the 1-based packet number.
    pub fn set_pcap_cnt(&mut self, on: bool) {
        self.pcap_cnt = on;
    }

    /// The packet path is at frame `n` (1-based, counting every frame read): what
    /// `pcap_cnt` shows. Told per frame because the shared frame counters are only
    /// published per batch.
    #[inline]
    pub fn frame(&mut self, n: u64) {
        self.frame_no = n;
    }

    /// Suricata's `stream.midstream`: connections picked up without their handshake are
    /// inspected (their application layer included).
    pub fn midstream(&self) -> bool {
        self.midstream
    }

    /// The client (Suricata's orientation: the first sender) and the application protocol
    /// of the packet's connection, when the detector tracks it.
    pub fn flow_of(&self, v: &PacketView<'_, '_>) -> Option<((IpAddr, u16), Option<AppProto>)> {
        self.flows.get(v.slot, v.uid).map(|f| (f.client, f.app))
    }

    /// The detector's own HTTP parsing state of the packet's connection, taken out.
    pub fn take_own_http(
        &mut self,
        v: &PacketView<'_, '_>,
    ) -> Option<Box<crate::analyzers::http::HttpConn>> {
        self.flows
            .get_mut(v.slot, v.uid)
            .and_then(|f| f.http.take())
    }

    /// Puts back what [`Detector::take_own_http`] took (if the connection is still tracked).
    pub fn put_own_http(
        &mut self,
        v: &PacketView<'_, '_>,
        conn: Box<crate::analyzers::http::HttpConn>,
    ) {
        if let Some(f) = self.flows.get_mut(v.slot, v.uid) {
            f.http = Some(conn);
        }
    }

    /// The connection ended: its state is dropped.
    pub fn conn_end(&mut self, slot: u32, uid: Uid) {
        self.flows.remove(slot, uid);
    }

    fn flow_mut(&mut self, v: &PacketView<'_, '_>) -> Option<&mut FlowState> {
        let st = self.flows.get_or_insert(v.slot, v.uid, |used| {
            let fresh = FlowState::new(v.uid, v.ts, flow_hash(v), client_of(v));
            match used {
                Some(mut st) => {
                    st.refill(fresh);
                    st
                }
                None => Box::new(fresh),
            }
        });
        if st.is_none() {
            Stats::inc(&self.stats.detect_flows_full);
        }
        st
    }

    /// Every packet of a connection (after the flow stage): packet and stream rules, TCP
    /// state, protocol detection and the TLS handshake.
    pub fn on_packet(&mut self, v: &PacketView<'_, '_>, out: &mut dyn RecordSink) {
        let midstream = self.midstream;
        let payload = v.payload();
        let mut window = std::mem::take(&mut self.window);
        let Some(fs) = self.flow_mut(v) else {
            self.window = window;
            return;
        };
        let mut d = if endpoints(v).0 == fs.client { 0 } else { 1 };
        fs.pkts[d] += 1;
        fs.bytes[d] += v.layer.ip_len as u64;
        fs.payload_bytes[d] += payload.len() as u64;
        fs.seen[d] = true;
        // TCP: handshake, in-order data of this segment.
        let mut new_data: &[u8] = payload;
        let mut payload_new = true;
        let mut stream_ok = false;
        if let Transport::Tcp(t) = &v.layer.transport {
            let syn = t.flags & tcp_flags::SYN != 0;
            let ack = t.flags & tcp_flags::ACK != 0;
            let tr = &mut fs.tcp;
            if syn && !ack && d == 0 {
                tr.syn = true;
            } else if syn && ack && d == 1 {
                tr.synack = tr.syn || midstream;
            } else if ack && d == 0 && tr.synack && !tr.established {
                tr.established = true;
            }
            if !tr.established && !tr.syn && midstream && !syn {
                // Picked up mid-connection: Suricata's stream.midstream.
                tr.established = true;
            }
            let data_seq = if syn { t.seq.wrapping_add(1) } else { t.seq };
            match tr.next[d] {
                None => {
                    tr.next[d] = Some(data_seq.wrapping_add(payload.len() as u32));
                }
                Some(next) => {
                    let diff = data_seq.wrapping_sub(next) as i32;
                    if diff == 0 {
                        stream_ok = true;
                        tr.next[d] = Some(next.wrapping_add(payload.len() as u32));
                    } else if diff < 0 {
                        let skip = (-diff) as usize;
                        if skip >= payload.len() {
                            new_data = &[];
                            payload_new = payload.is_empty();
                        } else {
                            new_data = &payload[skip..];
                            stream_ok = true;
                            tr.next[d] = Some(next.wrapping_add(new_data.len() as u32));
                        }
                    } else {
                        // A gap: what came before cannot be joined to this.
                        tr.tail[d].clear();
                        tr.next[d] = Some(data_seq.wrapping_add(payload.len() as u32));
                    }
                }
            }
            if syn {
                // Data on a SYN (TCP Fast Open) starts the stream.
                stream_ok = true;
            }
        }
        // Application protocol detection on the first payload of each direction.
        if !new_data.is_empty() && fs.app.is_none() && !fs.app_final {
            fs.app = detect_app(v, new_data, fs.client);
            fs.probes[d] = fs.probes[d].saturating_add(1);
            if d == 0
                && fs.app == Some(AppProto::Http)
                && new_data.starts_with(b"HTTP/")
                && v.transport == Transport4::Tcp
                && !fs.tcp.syn
            {
                // Picked up mid-stream with the server's reply first: Suricata turns the
                // flow around, so that the sender is the server.
                fs.reverse(endpoints(v).1);
                d = 1;
            }
            if fs.app.is_none() && fs.probes[0] >= APP_PROBES && fs.probes[1] >= APP_PROBES {
                fs.app_final = true;
            }
        }
        if matches!(
            v.transport,
            Transport4::Udp | Transport4::Icmp | Transport4::Other
        ) && fs.app.is_none()
            && !fs.app_final
            && fs.seen == [true, true]
        {
            fs.app_final = true;
        }
        let established = match v.transport {
            Transport4::Tcp => fs.tcp.established,
            _ => fs.seen == [true, true],
        };
        let tls_events = if fs.app == Some(AppProto::Tls) && !new_data.is_empty() {
            let tc = fs.tls.get_or_insert_with(Default::default);
            let mut ev = Vec::new();
            tc.dirs[d].feed(new_data, &mut tc.info, &mut ev);
            ev
        } else {
            Vec::new()
        };
        // The stream window: earlier in-order bytes, then this segment's new ones.
        let has_stream = v.transport == Transport4::Tcp
            && stream_ok
            && !new_data.is_empty()
            && !fs.tcp.tail[d].is_empty();
        if has_stream {
            window.clear();
            window.extend_from_slice(&fs.tcp.tail[d]);
            window.extend_from_slice(new_data);
        }
        let tail_len = fs.tcp.tail[d].len();
        let carry = has_stream.then(|| std::mem::take(&mut fs.tcp.carry[d]));
        let facts_base = FlowFacts {
            to_server: d == 0,
            established,
            app: fs.app,
            app_final: fs.app_final,
            stream_bytes: fs.payload_bytes,
        };
        let psrc = PacketSource {
            payload,
            stream: has_stream.then_some((&window[..], tail_len)),
            payload_new,
            ip_header: v.layer.header,
            icmp_header: match &v.layer.transport {
                Transport::Icmp(i) => i.header,
                _ => &[],
            },
        };
        let point = match v.layer.transport {
            Transport::Tcp(_) => Point::PktTcp,
            Transport::Udp(_) => Point::PktUdp,
            Transport::Icmp(_) => Point::PktIcmp,
            Transport::Other { .. } => Point::PktOther,
        };
        self.scratch.carry = carry;
        self.run(point, v, &facts_base, &psrc, None, Stage::Once, out);
        self.window = window;
        let carry = self.scratch.carry.take();
        // Keep the tail for the next segment.
        if let Some(fs) = self.flows.get_mut(v.slot, v.uid) {
            if v.transport == Transport4::Tcp && !new_data.is_empty() {
                // The tail changes: the carried matches fit it only if this window was scanned.
                fs.tcp.carry[d] = match carry {
                    Some(mut c) if c.fresh => {
                        c.fresh = false;
                        c
                    }
                    _ => Default::default(),
                };
                let t = &mut fs.tcp.tail[d];
                if stream_ok || t.is_empty() {
                    // The last STREAM_TAIL bytes, without ever holding more (per-flow memory).
                    if new_data.len() >= STREAM_TAIL {
                        t.clear();
                        t.extend_from_slice(&new_data[new_data.len() - STREAM_TAIL..]);
                    } else {
                        let keep = STREAM_TAIL - new_data.len();
                        if t.len() > keep {
                            t.drain(..t.len() - keep);
                        }
                        if t.capacity() < STREAM_TAIL {
                            t.reserve_exact(STREAM_TAIL - t.len());
                        }
                        t.extend_from_slice(new_data);
                    }
                }
            }
        }
        // Application-layer events found in this packet.
        for ev in tls_events {
            let info = match self.flows.get(v.slot, v.uid).and_then(|f| f.tls.as_ref()) {
                Some(t) => t.info.clone(),
                None => break,
            };
            let point = match ev {
                tls::TlsEvent::ClientHello => Point::TlsClient,
                tls::TlsEvent::ServerHello => continue,
                tls::TlsEvent::Certificate => Point::TlsServer,
            };
            let src = TlsSource {
                info: &info,
                packet: PacketSource {
                    payload,
                    stream: None,
                    payload_new,
                    ip_header: v.layer.header,
                    icmp_header: &[],
                },
            };
            let app = AppEvent {
                tx: None,
                obj: AppObj::Tls(&info),
            };
            self.run(point, v, &facts_base, &src, Some(app), Stage::Once, out);
        }
    }

    /// An HTTP request's headers are in (`complete` false) or the whole request, body
    /// included as far as the analyzer keeps it. Call with the packet that completed them.
    pub fn on_http_request(
        &mut self,
        v: &PacketView<'_, '_>,
        req: &HttpRequest<'_>,
        complete: bool,
        out: &mut dyn RecordSink,
    ) {
        self.http_stage(v, Some(req), None, complete, out);
    }

    /// An HTTP response's headers are in, or the whole response; with its request when known.
    pub fn on_http_response(
        &mut self,
        v: &PacketView<'_, '_>,
        req: Option<&HttpRequest<'_>>,
        resp: &HttpResponse<'_>,
        complete: bool,
        out: &mut dyn RecordSink,
    ) {
        self.http_stage(v, req, Some(resp), complete, out);
    }

    /// Suricata inspects a transaction as it progresses: header rules once the headers are
    /// in, body rules once the body is; a rule matches a transaction's side once.
    fn http_stage(
        &mut self,
        v: &PacketView<'_, '_>,
        req: Option<&HttpRequest<'_>>,
        resp: Option<&HttpResponse<'_>>,
        complete: bool,
        out: &mut dyn RecordSink,
    ) {
        let side = usize::from(resp.is_some());
        let Some(base) = self.app_event(v, AppProto::Http, side == 0) else {
            return;
        };
        let Some(fs) = self.flows.get_mut(v.slot, v.uid) else {
            return;
        };
        let body_empty = match resp {
            Some(r) => r.body.is_empty(),
            None => req.is_none_or(|r| r.body.is_empty()),
        };
        let new_tx = |fs: &mut FlowState| {
            let n = if side == 0 {
                &mut fs.tx
            } else {
                &mut fs.resp_tx
            };
            *n += 1;
            *n - 1
        };
        let (tx, stage) = if complete {
            match fs.http_open[side].take() {
                // Nothing new since the headers.
                Some(_) if body_empty => {
                    fs.http_fired[side].clear();
                    return;
                }
                Some(tx) => (tx, Stage::Done(side)),
                None => (new_tx(fs), Stage::Done(side)),
            }
        } else {
            fs.http_fired[side].clear();
            let tx = new_tx(fs);
            fs.http_open[side] = Some(tx);
            (tx, Stage::Headers(side))
        };
        let src = HttpSource {
            req,
            resp,
            to_server: side == 0,
            packet: packet_only(v),
            derived: Default::default(),
        };
        let point = if side == 0 {
            Point::HttpRequest
        } else {
            Point::HttpResponse
        };
        let app = AppEvent {
            tx: Some(tx),
            obj: AppObj::Http(req, resp),
        };
        self.run(point, v, &base, &src, Some(app), stage, out);
        if complete {
            if let Some(fs) = self.flows.get_mut(v.slot, v.uid) {
                fs.http_fired[side].clear();
            }
        }
    }

    /// A DNS message has been parsed (queries are inspected; responses are ignored).
    pub fn on_dns(
        &mut self,
        v: &PacketView<'_, '_>,
        msg: &DnsMessage<'_>,
        out: &mut dyn RecordSink,
    ) {
        // Suricata reads DNS on its port only (other names services, mDNS, LLMNR and NetBIOS,
        // are not its DNS).
        if msg.response || (v.orig.1 != 53 && v.resp.1 != 53) {
            return;
        }
        let Some(base) = self.app_event(v, AppProto::Dns, true) else {
            return;
        };
        let src = DnsSource {
            msg,
            packet: packet_only(v),
        };
        let app = AppEvent {
            tx: Some(self.next_tx(v)),
            obj: AppObj::Dns(msg),
        };
        self.run(Point::Dns, v, &base, &src, Some(app), Stage::Once, out);
    }

    fn next_tx(&mut self, v: &PacketView<'_, '_>) -> u64 {
        match self.flows.get_mut(v.slot, v.uid) {
            Some(f) => {
                f.tx += 1;
                f.tx - 1
            }
            None => 0,
        }
    }

    /// Flow facts for an application-layer event (which also confirms the protocol).
    fn app_event(
        &mut self,
        v: &PacketView<'_, '_>,
        app: AppProto,
        to_server: bool,
    ) -> Option<FlowFacts> {
        let midstream = self.midstream;
        let fs = self.flow_mut(v)?;
        if fs.app.is_none() {
            fs.app = Some(app);
        }
        let established = match v.transport {
            Transport4::Tcp => fs.tcp.established || midstream,
            _ => fs.seen == [true, true],
        };
        Some(FlowFacts {
            to_server,
            established,
            app: Some(app),
            app_final: true,
            stream_bytes: fs.payload_bytes,
        })
    }

    /// Verifies the candidates at `point` and writes alerts.
    #[allow(clippy::too_many_arguments)]
    fn run(
        &mut self,
        point: Point,
        v: &PacketView<'_, '_>,
        ff: &FlowFacts,
        src: &dyn Source,
        app: Option<AppEvent<'_>>,
        stage: Stage,
        out: &mut dyn RecordSink,
    ) {
        let (src_ep, dst_ep) = endpoints(v);
        let facts = Facts {
            src: src_ep.0,
            dst: dst_ep.0,
            sport: src_ep.1,
            dport: dst_ep.1,
            ip_proto: v.layer.proto,
            layer: Some(v.layer),
            payload_len: v.payload().len(),
            to_server: ff.to_server,
            established: ff.established,
            app: ff.app,
            app_final: ff.app_final,
            stream_bytes: ff.stream_bytes,
        };
        let d = usize::from(!ff.to_server);
        let packet_point = (point as usize) <= Point::PktOther as usize;
        let key = engine::FlowKey::of(&facts);
        let flow = self.flows.get(v.slot, v.uid);
        let from_client = flow.is_some_and(|f| f.client == src_ep);
        let app_cached = flow
            .filter(|_| !packet_point)
            .and_then(|f| f.app_prefilter[d])
            .filter(|&(p, fc, k, _)| p == point && fc == from_client && k == key);
        let cached = flow
            .filter(|_| packet_point)
            .and_then(|f| f.pkt_prefilter[d]);
        let prefilter = match (app_cached, cached) {
            (Some((_, _, _, pf)), _) => pf,
            (None, Some((k, _, pf))) if k == key => pf,
            (None, cached) => {
                let subset = match cached {
                    // The endpoints are the same, only the flow key moved on.
                    Some((_, s, _)) => s,
                    None => {
                        let e = groups::Endpoints {
                            src: facts.src,
                            dst: facts.dst,
                            sport: facts.sport,
                            dport: facts.dport,
                            ip_proto: facts.ip_proto,
                        };
                        self.groups.subset(&self.rules.compiled, point, &e)
                    }
                };
                let pf = self
                    .groups
                    .prefilter(&self.rules.compiled, point, subset, key);
                if let Some(f) = self.flows.get_mut(v.slot, v.uid) {
                    if packet_point {
                        f.pkt_prefilter[d] = Some((key, subset, pf));
                    } else {
                        f.app_prefilter[d] = Some((point, from_client, key, pf));
                    }
                }
                pf
            }
        };
        let index = self.groups.index(point, prefilter);
        if packet_point && facts.payload_len == 0 && index.payload_only {
            // Empty segments (handshakes, ACKs) give payload patterns nothing to find.
            return;
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        let cands = self.rules.compiled.candidates(index, src, &mut scratch);
        if cands.is_empty() {
            self.scratch = scratch;
            return;
        }
        let mut empty_bits = Vec::new();
        for &ri in cands {
            let r = &self.rules.compiled.rules[ri as usize];
            let flow = self.flows.get(v.slot, v.uid);
            if let (Stage::Done(side), Some(f)) = (stage, flow) {
                if f.http_fired[side].contains(&ri) {
                    continue;
                }
            }
            let bits = match flow {
                Some(f) => &f.bits,
                None => &empty_bits,
            };
            if !engine::verify(r, &facts, src, bits) {
                continue;
            }
            if let Stage::Headers(side) = stage {
                if let Some(f) = self.flows.get_mut(v.slot, v.uid) {
                    if f.http_fired[side].len() < MAX_TX_MATCHES {
                        f.http_fired[side].push(ri);
                    }
                }
            }
            Stats::inc(&self.stats.detect_matches);
            if !r.flowbits.is_empty() {
                let bits = match self.flows.get_mut(v.slot, v.uid) {
                    Some(f) => &mut f.bits,
                    None => &mut empty_bits,
                };
                if !engine::flowbits_apply(r, bits) {
                    Stats::inc(&self.stats.detect_flowbits_full);
                }
            }
            if r.noalert || r.action == "pass" {
                continue;
            }
            let ths = [r.threshold, r.detection_filter];
            if !self.threshold_allows(ths, ri, &facts, v) {
                continue;
            }
            let r = &self.rules.compiled.rules[ri as usize];
            let line = self.render(ri, r, v, &facts, app.as_ref());
            Stats::inc(&self.stats.detect_alerts);
            out.record(Record::log(eve::EveAlert(line)));
        }
        self.scratch = scratch;
    }

    fn threshold_allows(
        &mut self,
        ths: [Option<rule::Threshold>; 2],
        ri: u32,
        f: &Facts<'_>,
        v: &PacketView<'_, '_>,
    ) -> bool {
        for th in ths.into_iter().flatten() {
            let key = match th.track {
                Track::BySrc => TrackKey::Ip(f.src),
                Track::ByDst => TrackKey::Ip(f.dst),
                Track::ByBoth => TrackKey::Pair(f.src, f.dst),
                Track::ByRule => TrackKey::Rule,
                Track::ByFlow => TrackKey::Flow(v.slot, v.uid),
            };
            let now = v.ts;
            let window = th.seconds as i64 * 1_000_000;
            if self.thresholds.len() >= self.max_thresholds
                && !self.thresholds.contains_key(&(ri, key))
            {
                self.thresholds
                    .retain(|_, s| now.0 - s.first.0 <= window.max(3_600_000_000));
                if self.thresholds.len() >= self.max_thresholds {
                    Stats::inc(&self.stats.detect_threshold_full);
                    continue;
                }
            }
            let st = self.thresholds.entry((ri, key)).or_insert(ThState {
                first: now,
                count: 0,
            });
            if now.0 - st.first.0 > window {
                st.first = now;
                st.count = 0;
            }
            st.count += 1;
            let n = st.count;
            let ok = match th.kind {
                ThresholdKind::Limit => n <= th.count,
                ThresholdKind::Threshold => {
                    if n >= th.count {
                        st.count = 0;
                        st.first = now;
                        true
                    } else {
                        false
                    }
                }
                ThresholdKind::Both => n == th.count,
                ThresholdKind::DetectionFilter => n > th.count,
            };
            if !ok {
                return false;
            }
        }
        true
    }

    fn render(
        &self,
        ri: u32,
        r: &Rule,
        v: &PacketView<'_, '_>,
        f: &Facts<'_>,
        app: Option<&AppEvent<'_>>,
    ) -> String {
        let fs = self.flows.get(v.slot, v.uid);
        let (start, hash, pkts, bytes, app_proto, client) = match fs {
            Some(s) => (s.start, s.hash, s.pkts, s.bytes, s.app, s.client),
            None => (v.ts, flow_hash(v), [0; 2], [0; 2], f.app, client_of(v)),
        };
        let pkt = endpoints(v);
        let server = if pkt.0 == client { pkt.1 } else { pkt.0 };
        let secs = start.0.div_euclid(1_000_000) as u64;
        let usecs = start.0.rem_euclid(1_000_000) as u64;
        let flow_id =
            (((secs & 0xffff) << 48) | ((usecs & 0xffff) << 32) | hash as u64) & 0x7_ffff_ffff_ffff;
        let icmp = match &v.layer.transport {
            Transport::Icmp(i) => Some((i.icmp_type, i.code)),
            _ => None,
        };
        let ctx = eve::AlertCtx {
            ts: v.ts,
            flow_id,
            in_iface: self.in_iface.as_deref(),
            pcap_cnt: self.pcap_cnt.then_some(self.frame_no),
            vlan: v.frame.vlan,
            src: f.src,
            dst: f.dst,
            sport: f.sport,
            dport: f.dport,
            proto: v.layer.proto,
            icmp,
            tx_id: app.and_then(|a| a.tx),
            app_proto: app_proto.map(AppProto::name),
            to_server: f.to_server,
            app_obj: app.and_then(|a| a.obj.render()),
            flow_pkts: pkts,
            flow_bytes: bytes,
            flow_start: start,
            client,
            server,
        };
        eve::render(&ctx, &self.rules.rule_json[ri as usize], r.action)
    }
}

/// Where in a transaction's progress an inspection happens.
#[derive(Clone, Copy, Debug)]
enum Stage {
    /// Packets, DNS and TLS messages: inspected once.
    Once,
    /// An HTTP side's headers (0 = request): matches are remembered...
    Headers(usize),
    /// ...and skipped when the message completes.
    Done(usize),
}

/// The application-layer event an inspection is for: its transaction, and what the alert's
/// protocol object shows (rendered only for an alert).
#[derive(Clone, Copy)]
struct AppEvent<'a> {
    tx: Option<u64>,
    obj: AppObj<'a>,
}

#[derive(Clone, Copy)]
enum AppObj<'a> {
    Http(Option<&'a HttpRequest<'a>>, Option<&'a HttpResponse<'a>>),
    Dns(&'a DnsMessage<'a>),
    Tls(&'a TlsInfo),
}

impl AppObj<'_> {
    fn render(&self) -> Option<String> {
        match *self {
            AppObj::Http(req, resp) => http_obj(req, resp),
            AppObj::Dns(m) => dns_obj(m),
            AppObj::Tls(i) => tls_obj(i),
        }
    }
}

/// Flow facts that do not depend on the packet.
struct FlowFacts {
    to_server: bool,
    established: bool,
    app: Option<AppProto>,
    app_final: bool,
    stream_bytes: [u64; 2],
}

fn packet_only<'a>(v: &'a PacketView<'_, '_>) -> PacketSource<'a> {
    PacketSource {
        payload: v.payload(),
        stream: None,
        payload_new: true,
        ip_header: v.layer.header,
        icmp_header: &[],
    }
}

/// The application protocol a connection's first payload shows.
fn detect_app(v: &PacketView<'_, '_>, p: &[u8], client: (IpAddr, u16)) -> Option<AppProto> {
    const METHODS: &[&[u8]] = &[
        b"GET ",
        b"POST ",
        b"HEAD ",
        b"PUT ",
        b"DELETE ",
        b"OPTIONS ",
        b"CONNECT ",
        b"TRACE ",
        b"PATCH ",
        b"PROPFIND ",
    ];
    let (src, dst) = endpoints(v);
    let server = if src == client { dst } else { src };
    let ports = [src.1, dst.1];
    match v.transport {
        Transport4::Udp => {
            if ports.contains(&53) && DnsAnalyzer::looks_like_dns(p, false) {
                return Some(AppProto::Dns);
            }
            if ports.contains(&44818) && enip_encapsulation(p) {
                return Some(AppProto::Enip);
            }
            None
        }
        Transport4::Tcp => {
            if ports.contains(&44818) && enip_encapsulation(p) {
                return Some(AppProto::Enip);
            }
            if METHODS.iter().any(|m| p.starts_with(m)) || p.starts_with(b"HTTP/1.") {
                return Some(AppProto::Http);
            }
            if p.len() >= 3 && p[0] == 0x16 && p[1] == 3 && p[2] <= 4 {
                return Some(AppProto::Tls);
            }
            if p.starts_with(b"SSH-") {
                return Some(AppProto::Ssh);
            }
            let resp_port = server.1;
            if p.starts_with(b"220") || p.starts_with(b"EHLO") || p.starts_with(b"HELO") {
                if matches!(resp_port, 25 | 587 | 465)
                    || p.starts_with(b"EHLO")
                    || p.starts_with(b"HELO")
                {
                    return Some(AppProto::Smtp);
                }
                if resp_port == 21 {
                    return Some(AppProto::Ftp);
                }
            }
            if p.starts_with(b"USER ") && resp_port == 21 {
                return Some(AppProto::Ftp);
            }
            if resp_port == 53 && DnsAnalyzer::looks_like_dns(p, true) {
                return Some(AppProto::Dns);
            }
            None
        }
        _ => None,
    }
}

/// An EtherNet/IP encapsulation header whose length field fits the payload.
fn enip_encapsulation(p: &[u8]) -> bool {
    p.len() >= buffers::ENIP_HEADER
        && usize::from(u16::from_le_bytes([p[2], p[3]])) <= p.len() - buffers::ENIP_HEADER
}

fn http_obj(req: Option<&HttpRequest<'_>>, resp: Option<&HttpResponse<'_>>) -> Option<String> {
    use std::fmt::Write as _;
    let mut s = String::from("\"http\":{");
    let mut first = true;
    let mut field = |s: &mut String, k: &str, val: &[u8]| {
        if !first {
            s.push(',');
        }
        first = false;
        eve::jstr(s, k);
        s.push(':');
        eve::jbytes(s, val);
    };
    if let Some(r) = req {
        let host = r
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(b"host"))
            .map(|(_, h)| *h);
        if let Some(h) = host {
            let h = match h.iter().rposition(|&b| b == b':') {
                Some(p) if !h.starts_with(b"[") => &h[..p],
                _ => h,
            };
            field(&mut s, "hostname", h);
        }
        field(&mut s, "url", r.uri);
        for (hn, key) in [("user-agent", "http_user_agent"), ("referer", "http_refer")] {
            if let Some((_, val)) = r
                .headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(hn.as_bytes()))
            {
                field(&mut s, key, val);
            }
        }
        if let Some(rs) = resp {
            if let Some((_, ct)) = rs
                .headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(b"content-type"))
            {
                field(&mut s, "http_content_type", ct);
            }
        }
        field(&mut s, "http_method", r.method);
        field(&mut s, "protocol", r.version);
    }
    if let Some(rs) = resp {
        if let Ok(code) = std::str::from_utf8(rs.status).unwrap_or("").parse::<u16>() {
            if !first {
                s.push(',');
            }
            first = false;
            let _ = write!(s, "\"status\":{code}");
        }
        if !first {
            s.push(',');
        }
        let _ = write!(s, "\"length\":{}", rs.body.len());
    }
    s.push('}');
    Some(s)
}

fn rrtype_name(t: u16) -> String {
    match t {
        1 => "A".into(),
        2 => "NS".into(),
        5 => "CNAME".into(),
        6 => "SOA".into(),
        12 => "PTR".into(),
        15 => "MX".into(),
        16 => "TXT".into(),
        28 => "AAAA".into(),
        33 => "SRV".into(),
        65 => "HTTPS".into(),
        255 => "ANY".into(),
        n => n.to_string(),
    }
}

fn dns_obj(m: &DnsMessage<'_>) -> Option<String> {
    use std::fmt::Write as _;
    let mut s = String::from("\"dns\":{\"query\":[");
    for (i, (name, t)) in m.queries.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(s, "{{\"type\":\"query\",\"id\":{},\"rrname\":", m.id);
        eve::jbytes(&mut s, name);
        let _ = write!(
            s,
            ",\"rrtype\":\"{}\",\"opcode\":{}}}",
            rrtype_name(*t),
            m.opcode
        );
    }
    s.push_str("]}");
    Some(s)
}

fn tls_obj(i: &TlsInfo) -> Option<String> {
    let mut s = String::from("\"tls\":{");
    let mut first = true;
    let mut field = |s: &mut String, k: &str, val: &str| {
        if !first {
            s.push(',');
        }
        first = false;
        eve::jstr(s, k);
        s.push(':');
        eve::jstr(s, val);
    };
    if let Some(v) = &i.subject {
        field(&mut s, "subject", v);
    }
    if let Some(v) = &i.issuer {
        field(&mut s, "issuerdn", v);
    }
    if let Some(v) = &i.serial {
        field(&mut s, "serial", v);
    }
    if let Some(v) = &i.fingerprint {
        field(&mut s, "fingerprint", v);
    }
    if let Some(v) = &i.sni {
        field(&mut s, "sni", &String::from_utf8_lossy(v));
    }
    let version = match i.version {
        0x0300 => "SSLv3",
        0x0301 => "TLSv1",
        0x0302 => "TLS 1.1",
        0x0303 => "TLS 1.2",
        0x0304 => "TLS 1.3",
        _ => "UNDETERMINED",
    };
    field(&mut s, "version", version);
    s.push('}');
    Some(s)
}

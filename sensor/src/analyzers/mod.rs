//! Analyzers: one module per protocol, each turning packets or connection summaries into
//! records. [`Analyzers`] is the stage's entry point: it receives what the flow stage produces
//! and queues finished [`Record`]s for the log stage.
//!
//! Three kinds of input reach an analyzer:
//! - every decoded frame ([`Analyzers::on_frame`]), before the flow stage, for per-packet logs
//!   that need no connection (ARP, CC-Link IE without IP, passive fingerprints);
//! - every packet of a connection ([`FlowSink::packet`]), with its uid and direction, for the
//!   application-layer analyzers (DNS, HTTP) and service detection;
//! - every conn.log row ([`FlowSink::conn_row`]): when a connection ends, its analyzers log
//!   what is still pending and its confirmed services go into the row.
//!
//! Per-connection application state lives in [`AppTable`], keyed by the flow stage's slot and
//! checked against the uid, allocated once with a fixed capacity like the flow table itself.

pub mod conn;
pub mod dns;
pub mod frame_logs;
pub mod http;
pub mod reassembly;
pub mod service;
pub mod small;
// OT and discovery logs (owned by `ot::OtAnalyzers`) and their shared aggregation window.
pub mod arp;
pub mod browser;
pub mod cclink_basic;
pub mod cclink_ie;
pub mod dhcp;
pub mod dhcpv6;
pub mod nbns;
pub mod ns;
pub mod ot;
pub mod p0f;
pub mod ssdp;
pub mod window;
pub mod yaf;

use std::fmt::Debug;
use std::sync::Arc;

use crate::config::Prefix;
use crate::decode::Decoded;
use crate::flow::{ConnSummary, FlowSink, PacketView, RowReason, Uid, MAX_SERVICES};
use crate::logs::zeek::ZeekRecord;
use crate::stats::Stats;
use crate::ts::Ts;

/// A record of any log but conn.log. These logs see far fewer rows than conn.log, so one
/// allocation per record buys a record type that the log stage need not know.
pub trait LogRecord: ZeekRecord + Send + Debug {}
impl<T: ZeekRecord + Send + Debug> LogRecord for T {}

/// A finished log record, ready for the log stage. conn.log rows, the bulk of the traffic,
/// travel unboxed (batches are moved, not the rows one by one).
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Record {
    Conn(conn::ConnRecord),
    /// p0f-k.log and dns.log rows come by the thousand too and are no larger than a conn
    /// row (checked below): they travel unboxed as well, sparing an allocation per row.
    P0f(p0f::P0fRecord),
    Dns(dns::DnsRecord),
    Log(Box<dyn LogRecord>),
}

const _: () = assert!(
    std::mem::size_of::<p0f::P0fRecord>() <= std::mem::size_of::<conn::ConnRecord>()
        && std::mem::size_of::<dns::DnsRecord>() <= std::mem::size_of::<conn::ConnRecord>()
);

impl Record {
    /// Wraps any log's record.
    pub fn log(r: impl LogRecord + 'static) -> Record {
        Record::Log(Box::new(r))
    }

    pub fn as_zeek(&self) -> &dyn ZeekRecord {
        match self {
            Record::Conn(r) => r,
            Record::P0f(r) => r,
            Record::Dns(r) => r,
            Record::Log(r) => r.as_ref(),
        }
    }
}

/// The file of every log the sensor writes, so that every interval folder holds all of them
/// (empty files included), as the reference bundle does (reference §1.5).
pub const LOG_FILES: &[&str] = &[
    "conn.log",
    "dns.log",
    "http.log",
    "yaf_flow.log",
    "arp.log",
    "ns.log",
    "p0f-k.log",
    "dhcp2.log",
    "netbios-ns.log",
    "mswin-browser.log",
    "dhcpv6.log",
    "ssdp.log",
    "cclink-ief-basic.log",
    "cclink-ie.log",
    "cclink-ie-tsn.log",
    "cclink-ie-tsn-slmp.log",
    "cclink-ie-tsn-ptp.log",
    "eve.json",
];

/// Where finished records go (the log stage's channel, or a test's vector). A sink may batch,
/// but only boundedly: a burst (the end-of-input flush of a full table) must never pile up.
pub trait RecordSink: Send {
    fn record(&mut self, r: Record);
    /// Hands on anything batched (interval boundaries, idle ticks, end of input).
    fn flush(&mut self) {}
}

impl RecordSink for Vec<Record> {
    fn record(&mut self, r: Record) {
        self.push(r);
    }
}

/// Application-layer state of one connection.
#[derive(Debug, Default)]
pub struct AppState {
    pub uid: Uid,
    /// Confirmed services: bit `i` is [`crate::flow::SERVICE_NAMES`]`[i]`.
    pub services: u64,
    pub detect: service::Detect,
    pub dns: Option<Box<dns::DnsConn>>,
    pub http: Option<Box<http::HttpConn>>,
}

impl AppState {
    /// Records a confirmed service by its Zeek name (a name outside the list is ignored).
    pub fn confirm(&mut self, name: &str) {
        if let Some(i) = crate::flow::SERVICE_NAMES.iter().position(|n| *n == name) {
            self.services |= 1 << i;
        }
    }

    /// Takes a service back out (its analyzer found a protocol violation, as Zeek's DPD
    /// removes the name).
    pub fn withdraw(&mut self, name: &str) {
        if let Some(i) = crate::flow::SERVICE_NAMES.iter().position(|n| *n == name) {
            self.services &= !(1 << i);
        }
    }
}

/// Per-connection application state, indexed by flow slot (checked against the uid): a dense
/// array that grows with the flow table's slots (reserved up front, never reallocated) and
/// refuses (and counts) connections beyond its capacity rather than growing past it.
pub struct AppTable {
    states: Vec<AppState>,
    /// Slots holding a connection's state (uid not 0).
    live: usize,
    cap: usize,
    stats: Arc<Stats>,
}

impl AppTable {
    /// `slots` is the flow table's capacity (slot numbers stay below it); `cap` the most
    /// connections with state at once.
    pub fn new(slots: usize, cap: usize, stats: Arc<Stats>) -> AppTable {
        AppTable {
            states: Vec::with_capacity(slots),
            live: 0,
            cap,
            stats,
        }
    }

    /// The state of the connection in `slot`, created blank for a new uid; `None` when the
    /// table is full.
    #[inline]
    pub fn entry(&mut self, slot: u32, uid: Uid) -> Option<&mut AppState> {
        // Most packets belong to a connection that already has its state.
        let i = slot as usize;
        if self.states.get(i).is_some_and(|st| st.uid == uid) {
            return self.states.get_mut(i);
        }
        self.open(slot, uid)
    }

    /// [`AppTable::entry`] for a connection without state in its slot yet.
    #[inline(never)]
    fn open(&mut self, slot: u32, uid: Uid) -> Option<&mut AppState> {
        let i = slot as usize;
        if i >= self.states.len() {
            // Within the reserved capacity (slots grow one by one in the flow table).
            self.states.resize_with(i + 1, AppState::default);
        }
        let st = &mut self.states[i];
        if st.uid == uid {
            return Some(st);
        }
        if st.uid != Uid(0) {
            // The slot's previous connection ended without its row reaching us
            // (cannot happen today; cheap insurance against stale state).
        } else if self.live >= self.cap {
            Stats::inc(&self.stats.app_states_full);
            return None;
        } else {
            self.live += 1;
        }
        *st = AppState {
            uid,
            ..AppState::default()
        };
        Some(st)
    }

    /// Takes the state of a connection whose last row is being written.
    pub fn take(&mut self, slot: u32, uid: Uid) -> Option<AppState> {
        let st = self.states.get_mut(slot as usize)?;
        if st.uid != uid || uid == Uid(0) {
            return None;
        }
        self.live -= 1;
        Some(std::mem::take(st))
    }

    pub fn get_mut(&mut self, slot: u32, uid: Uid) -> Option<&mut AppState> {
        self.states
            .get_mut(slot as usize)
            .filter(|st| st.uid == uid && uid != Uid(0))
    }
}

/// The analyzer stage.
pub struct Analyzers {
    local_nets: Vec<Prefix>,
    out: Box<dyn RecordSink>,
    apps: AppTable,
    ftp: service::FtpExpectations,
    dns: dns::DnsAnalyzer,
    http: http::HttpAnalyzer,
    ot: ot::OtAnalyzers,
    stats: Arc<Stats>,
    frame_logs: frame_logs::FrameLogs,
    /// `[analyzers] enabled`: off, only conn rows (and detection, if configured) come out.
    enabled: bool,
    /// With rules loaded: what the detection thread is handed (see [`crate::detect::stage`]).
    pub detect: Option<crate::detect::stage::DetectLink>,
}

impl Analyzers {
    /// `max_conns` bounds the connections with application state (at most the flow table's
    /// capacity is useful).
    pub fn new(
        local_nets: Vec<Prefix>,
        max_conns: usize,
        stats: Arc<Stats>,
        out: Box<dyn RecordSink>,
    ) -> Analyzers {
        Analyzers::with_slots(local_nets, max_conns, max_conns, stats, out)
    }

    /// Like [`Analyzers::new`], for a flow table of `slots` entries.
    pub fn with_slots(
        local_nets: Vec<Prefix>,
        slots: usize,
        max_conns: usize,
        stats: Arc<Stats>,
        out: Box<dyn RecordSink>,
    ) -> Analyzers {
        Analyzers {
            local_nets,
            out,
            apps: AppTable::new(slots, max_conns, stats.clone()),
            ftp: service::FtpExpectations::default(),
            dns: dns::DnsAnalyzer::new(stats.clone()),
            http: http::HttpAnalyzer::new(stats.clone()),
            ot: ot::OtAnalyzers::new(stats.clone()),
            frame_logs: frame_logs::FrameLogs::without_p0f(stats.clone()),
            stats,
            enabled: true,
            detect: None,
        }
    }

    /// Turns the application analyzers off (or back on): conn rows are still written.
    pub fn with_enabled(mut self, enabled: bool) -> Analyzers {
        self.enabled = enabled;
        self
    }

    /// Replaces the per-frame logs (p0f-k.log, yaf_flow.log) with ones built from the config.
    pub fn with_frame_logs(mut self, logs: frame_logs::FrameLogs) -> Analyzers {
        self.frame_logs = logs;
        self
    }

    /// Every decoded frame, before the flow stage sees it.
    pub fn on_frame(&mut self, frame: &Decoded<'_>) {
        if !self.enabled {
            return;
        }
        self.ot.on_frame(frame, self.out.as_mut());
        self.frame_logs.on_frame(frame, self.out.as_mut());
    }

    /// Packet time moved on: aggregation windows that ended are written. Runs per packet:
    /// each analyzer compares with its next deadline and only then leaves the line.
    #[inline]
    pub fn advance(&mut self, now: Ts) {
        if !self.enabled {
            // Nothing was fed to the windows: none can close.
            return;
        }
        self.dns.advance(now, self.out.as_mut());
        self.ot.advance(now, self.out.as_mut());
        self.frame_logs.advance(now, self.out.as_mut());
    }

    /// End of input: every open window and pending transaction is written.
    pub fn finish(&mut self) {
        self.dns.finish(self.out.as_mut());
        self.ot.finish(self.out.as_mut());
        self.frame_logs.finish(self.out.as_mut());
        self.out.flush();
    }

    /// Hands on batched records.
    pub fn flush(&mut self) {
        self.out.flush();
    }
}

impl FlowSink for Analyzers {
    fn conn_row(&mut self, mut row: ConnSummary) {
        if row.reason != RowReason::Interim {
            if let Some(d) = self.detect.as_mut() {
                d.push(crate::detect::stage::Item::ConnEnd {
                    slot: row.slot,
                    uid: row.uid,
                });
            }
        }
        let out = self.out.as_mut();
        let st = if row.reason == RowReason::Interim {
            self.apps
                .get_mut(row.slot, row.uid)
                .map(|st| (st.services, None))
        } else {
            self.apps.take(row.slot, row.uid).map(|st| {
                let services = st.services;
                (services, Some(st))
            })
        };
        if let Some((services, ended)) = st {
            merge_services(&mut row, services);
            if let Some(mut st) = ended {
                if let Some(d) = st.dns.as_mut() {
                    self.dns.conn_end(d, &row, out);
                }
                if let Some(h) = st.http.as_mut() {
                    self.http.conn_end(h, &row, out);
                }
            }
        }
        out.record(Record::Conn(conn::ConnRecord::new(row, &self.local_nets)));
    }

    fn packet(&mut self, v: &PacketView<'_, '_>) {
        if let Some(d) = self.detect.as_mut() {
            d.packet(v);
        }
        if !self.enabled {
            return;
        }
        if !self.ftp.is_empty() && self.ftp.take(v) {
            if let Some(st) = self.apps.entry(v.slot, v.uid) {
                st.confirm("ftp-data");
                st.detect.stop();
            }
        }
        let payload = v.payload();
        let Some(st) = (if payload.is_empty() {
            // Only connections already known to an analyzer care about empty segments
            // (FIN/RST end an HTTP body).
            self.apps.get_mut(v.slot, v.uid)
        } else {
            self.apps.entry(v.slot, v.uid)
        }) else {
            return;
        };
        let out = self.out.as_mut();
        if !payload.is_empty() {
            service::detect(st, v, &self.stats);
            if st.services & service::FTP_BIT != 0 {
                self.ftp.scan(v);
            }
        }
        // The detector sees the transactions these analyzers complete.
        if let Some(d) = st.dns.as_mut() {
            if crate::detect::feed::dns_packet(&mut self.dns, d, v, out, self.detect.as_mut()) {
                st.confirm("dns");
            }
        }
        if let Some(d) = self.detect.as_mut() {
            d.push(crate::detect::stage::Item::HttpTurn {
                analyzer: st.http.is_some(),
            });
        }
        if let Some(h) = st.http.as_mut() {
            match crate::detect::feed::http_packet(&mut self.http, h, v, out, self.detect.as_mut())
            {
                http::Verdict::Confirmed => st.confirm("http"),
                http::Verdict::Violated => st.withdraw("http"),
                http::Verdict::None => {}
            }
        }
        self.ot.packet(st, v, out);
    }
}

/// Adds the analyzers' confirmed services to those the flow stage knows (tunnels).
fn merge_services(row: &mut ConnSummary, services: u64) {
    let mut bits = services;
    while bits != 0 {
        let i = bits.trailing_zeros() as usize;
        bits &= bits - 1;
        let name = crate::flow::SERVICE_NAMES[i];
        if row.services.contains(&Some(name)) {
            continue;
        }
        if let Some(s) = row.services.iter_mut().find(|s| s.is_none()) {
            *s = Some(name);
        }
    }
    debug_assert!(row.services.len() == MAX_SERVICES);
}

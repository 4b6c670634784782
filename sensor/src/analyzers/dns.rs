//! dns.log: DNS, mDNS, LLMNR and NetBIOS Name Service messages over UDP and TCP.
//!
//! (Being written: this is the interface the analyzer stage calls.)

use std::sync::Arc;

use super::RecordSink;
use crate::flow::{ConnSummary, PacketView};
use crate::stats::Stats;
use crate::ts::Ts;

/// DNS state of one connection.
#[derive(Debug, Default)]
pub struct DnsConn {}

/// The DNS analyzer: shared state (the `pkts` aggregation window) and counters.
pub struct DnsAnalyzer {
    #[allow(dead_code)]
    stats: Arc<Stats>,
}

impl DnsAnalyzer {
    pub fn new(stats: Arc<Stats>) -> DnsAnalyzer {
        DnsAnalyzer { stats }
    }

    /// Whether a payload looks like a DNS message (content detection on any port).
    pub fn looks_like_dns(_payload: &[u8], _tcp: bool) -> bool {
        false
    }

    /// One packet of a connection with DNS attached; true when it held a valid DNS message
    /// (Zeek's analyzer confirmation, which puts `dns` into conn.log's `service`).
    pub fn packet(
        &mut self,
        _conn: &mut DnsConn,
        _v: &PacketView<'_, '_>,
        _out: &mut dyn RecordSink,
    ) -> bool {
        false
    }

    /// The connection ended: unanswered queries and unpaired replies are logged.
    pub fn conn_end(&mut self, _conn: &mut DnsConn, _row: &ConnSummary, _out: &mut dyn RecordSink) {
    }

    /// Packet time moved on: aggregation windows that ended are written.
    pub fn advance(&mut self, _now: Ts, _out: &mut dyn RecordSink) {}

    /// End of input: every window is written.
    pub fn finish(&mut self, _out: &mut dyn RecordSink) {}
}

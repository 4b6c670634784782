//! http.log: HTTP/1.x transactions over reassembled TCP streams, on any port.
//!
//! (Being written: this is the interface the analyzer stage calls.)

use std::sync::Arc;

use super::RecordSink;
use crate::flow::{ConnSummary, PacketView};
use crate::stats::Stats;

/// HTTP state of one connection: both directions' stream reassembly and parsers.
#[derive(Debug, Default)]
pub struct HttpConn {}

/// The HTTP analyzer.
pub struct HttpAnalyzer {
    #[allow(dead_code)]
    stats: Arc<Stats>,
}

impl HttpAnalyzer {
    pub fn new(stats: Arc<Stats>) -> HttpAnalyzer {
        HttpAnalyzer { stats }
    }

    /// Whether the first payload of a direction looks like HTTP (a request line from the
    /// originator, a status line from the responder).
    pub fn looks_like_http(_payload: &[u8], _is_orig: bool) -> bool {
        false
    }

    /// One TCP packet of a connection with HTTP attached (empty segments included); true once
    /// a request or reply parsed (confirmation).
    pub fn packet(
        &mut self,
        _conn: &mut HttpConn,
        _v: &PacketView<'_, '_>,
        _out: &mut dyn RecordSink,
    ) -> bool {
        false
    }

    /// The connection ended: transactions still open are logged.
    pub fn conn_end(
        &mut self,
        _conn: &mut HttpConn,
        _row: &ConnSummary,
        _out: &mut dyn RecordSink,
    ) {
    }
}

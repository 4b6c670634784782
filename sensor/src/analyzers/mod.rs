//! Analyzers: one module per protocol, each turning packets or connection summaries into
//! records. [`Analyzers`] is the stage's entry point: it receives what the flow stage produces
//! and queues finished [`Record`]s for the log stage.

pub mod conn;

use crate::config::Prefix;
use crate::flow::{ConnSummary, FlowSink};
use crate::logs::zeek::ZeekRecord;

/// A finished log record, ready for the log stage.
#[derive(Clone, Debug)]
pub enum Record {
    Conn(conn::ConnRecord),
}

impl Record {
    pub fn as_zeek(&self) -> &dyn ZeekRecord {
        match self {
            Record::Conn(r) => r,
        }
    }
}

/// The names of every log the sensor writes, so interval folders hold all of them (empty
/// files included).
pub const LOG_PATHS: &[&str] = &["conn"];

/// Where finished records go (the log stage's channel, or a test's vector). A sink may batch,
/// but only boundedly: a burst (the end-of-input flush of a full table) must never pile up.
pub trait RecordSink: Send {
    fn record(&mut self, r: Record);
    /// Hands on anything batched (interval boundaries, idle ticks, end of input).
    fn flush(&mut self) {}
}

/// The analyzer stage.
pub struct Analyzers {
    local_nets: Vec<Prefix>,
    out: Box<dyn RecordSink>,
}

impl Analyzers {
    pub fn new(local_nets: Vec<Prefix>, out: Box<dyn RecordSink>) -> Analyzers {
        Analyzers { local_nets, out }
    }

    /// Hands on batched records.
    pub fn flush(&mut self) {
        self.out.flush();
    }
}

impl FlowSink for Analyzers {
    fn conn_row(&mut self, row: ConnSummary) {
        self.out
            .record(Record::Conn(conn::ConnRecord::new(row, &self.local_nets)));
    }
}

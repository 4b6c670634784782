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

/// The analyzer stage.
pub struct Analyzers {
    local_nets: Vec<Prefix>,
    out: Vec<Record>,
}

impl Analyzers {
    pub fn new(local_nets: Vec<Prefix>) -> Analyzers {
        Analyzers { local_nets, out: Vec::with_capacity(256) }
    }

    /// Records produced since the last call.
    pub fn drain(&mut self) -> std::vec::Drain<'_, Record> {
        self.out.drain(..)
    }

    pub fn pending(&self) -> usize {
        self.out.len()
    }
}

impl FlowSink for Analyzers {
    fn conn_row(&mut self, row: ConnSummary) {
        self.out.push(Record::Conn(conn::ConnRecord::new(row, &self.local_nets)));
    }
}

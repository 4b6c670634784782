//! The logs built from frames rather than connections: p0f-k.log (TCP handshakes, with
//! handshake state of their own) and yaf_flow.log (flows of the IP protocols the flow table
//! leaves to YAF). Both keep their own bounded tables, because their rules (p0f's handshake
//! pairing, YAF's timeouts and keys) are not conn.log's.

use std::sync::Arc;

use super::p0f::P0f;
use super::yaf::YafTable;
use super::{Record, RecordSink};
use crate::config::{P0fConfig, YafConfig};
use crate::decode::Decoded;
use crate::stats::Stats;
use crate::ts::Ts;

pub struct FrameLogs {
    /// `None` when no fingerprint database is available (p0f-k.log stays empty).
    p0f: Option<P0f>,
    yaf: YafTable,
}

impl FrameLogs {
    pub fn new(p0f: &P0fConfig, yaf: &YafConfig, stats: Arc<Stats>) -> FrameLogs {
        FrameLogs {
            p0f: p0f.database.clone().map(|db| P0f::new(db, stats.clone())),
            yaf: YafTable::new(yaf.clone(), stats),
        }
    }

    /// Without a fingerprint database and with YAF's default table.
    pub fn without_p0f(stats: Arc<Stats>) -> FrameLogs {
        FrameLogs::new(&P0fConfig::default(), &YafConfig::default(), stats)
    }

    #[inline]
    pub fn on_frame(&mut self, frame: &Decoded<'_>, out: &mut dyn RecordSink) {
        if let Some(p) = self.p0f.as_mut() {
            if let Some(r) = p.on_frame(frame) {
                out.record(Record::P0f(r));
            }
        }
        self.yaf
            .on_frame(frame, &mut |r| out.record(Record::log(r)));
    }

    #[inline]
    pub fn advance(&mut self, now: Ts, out: &mut dyn RecordSink) {
        self.yaf.advance(now, &mut |r| out.record(Record::log(r)));
    }

    pub fn finish(&mut self, out: &mut dyn RecordSink) {
        self.yaf.finish(&mut |r| out.record(Record::log(r)));
    }
}

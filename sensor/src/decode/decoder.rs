//! The decoder proper. (Stub: replaced by the full implementation.)

use std::sync::Arc;

use super::{DecodeConfig, Decoded, DropReason, Frame};
use crate::stats::Stats;

pub struct Decoder {
    #[allow(dead_code)]
    cfg: DecodeConfig,
    #[allow(dead_code)]
    stats: Arc<Stats>,
}

impl Decoder {
    pub fn new(cfg: DecodeConfig, stats: Arc<Stats>) -> Self {
        Decoder { cfg, stats }
    }

    /// Decodes one frame. Drops are counted in [`Stats`] by the decoder itself.
    pub fn decode<'a>(&'a mut self, frame: Frame<'a>) -> Result<Decoded<'a>, DropReason> {
        let _ = frame;
        Err(DropReason::UnknownLinkType)
    }
}

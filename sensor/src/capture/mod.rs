//! Capture stage: packet sources.
//!
//! [`file::CaptureFile`] replays pcap and pcapng files (our own reader: it never trusts a
//! length field, and a truncated file ends with an error after every whole packet was
//! delivered); [`live::LiveCapture`] reads an interface through libpcap.

pub mod file;
pub mod live;
pub mod reader;

use crate::ts::Ts;

/// One packet as read from a source. `data` borrows the source's reusable buffer.
#[derive(Clone, Copy, Debug)]
pub struct RawPacket<'a> {
    pub ts: Ts,
    pub linktype: u32,
    pub data: &'a [u8],
    pub wire_len: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: not a pcap or pcapng file (magic {magic:02x?})")]
    BadMagic { path: String, magic: [u8; 4] },
    #[error("{path}: {what} at byte {offset}")]
    Corrupt {
        path: String,
        what: &'static str,
        offset: u64,
    },
    #[error("{path}: file ends in the middle of a packet record at byte {offset}")]
    Truncated { path: String, offset: u64 },
    #[error("interface {iface}: {message}")]
    Live { iface: String, message: String },
}

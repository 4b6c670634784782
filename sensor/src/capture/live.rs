//! Live capture through libpcap.
//!
//! [`LiveCapture`] opens the monitoring interface with the configured snaplen, kernel buffer,
//! promiscuous mode, read timeout and BPF filter, and hands out packets one at a time. A read
//! timeout is not an error but `Ok(None)`: it is the caller's chance to close an interval on the
//! wall clock when the mirror port falls silent. Immediate mode stays off so the kernel batches
//! packets (fewer wake-ups on a busy port); `timeout_ms` bounds how long a quiet link can keep a
//! packet waiting.
//!
//! Why the handle is non-blocking: on Linux, libpcap's memory-mapped TPACKET_V3 capture leaves
//! the read timeout to the kernel, which only wakes the reader when a buffer block holds at least
//! one packet. On a link with no traffic at all a blocking read would never return, and the
//! interval would never close. So we read non-blocking and, when nothing is there, sleep in short
//! steps until the timeout has passed. (Polling the descriptor would need `unsafe` FFI, which the
//! crate forbids.) Under load every read finds a packet and no sleeping happens.
//!
//! Each packet is copied into a buffer of snaplen bytes owned by the capture: returning libpcap's
//! own buffer from inside the retry loop is a borrow the compiler cannot yet prove sound, and one
//! copy of at most snaplen bytes is small next to decoding the packet.

use std::time::{Duration, Instant};

use pcap::{Active, Capture};

use super::{CaptureError, RawPacket};
use crate::config::CaptureConfig;
use crate::ts::Ts;

/// An open libpcap capture on one interface.
pub struct LiveCapture {
    iface: String,
    cap: Capture<Active>,
    linktype: u32,
    /// How long `next_packet` waits for a packet before returning `Ok(None)`.
    timeout: Duration,
    /// Sleep between two empty non-blocking reads.
    poll_step: Duration,
    /// The current packet: a copy of at most snaplen bytes, reused for every packet.
    buf: Vec<u8>,
    snaplen: usize,
    /// libpcap's counters are 32-bit and wrap; these accumulate them into 64-bit totals.
    totals: StatTotals,
}

/// 64-bit totals of libpcap's wrapping 32-bit counters (received, dropped, if_dropped).
#[derive(Debug, Default)]
struct StatTotals {
    last: [u32; 3],
    total: [u64; 3],
}

impl StatTotals {
    /// Folds a new reading in: each counter grew by the wrapping difference since the last one
    /// (correct as long as fewer than 2^32 packets pass between two readings).
    fn update(&mut self, now: [u32; 3]) -> (u64, u64, u64) {
        for ((last, total), now) in self.last.iter_mut().zip(self.total.iter_mut()).zip(now) {
            *total += u64::from(now.wrapping_sub(*last));
            *last = now;
        }
        (self.total[0], self.total[1], self.total[2])
    }
}

/// A libpcap time stamp as microseconds since the epoch. The handle delivers microsecond time
/// stamps (libpcap's default precision).
// `time_t`/`suseconds_t` are i64 on 64-bit Linux but i32 on 32-bit ARM gateways, so the
// conversions are useless on one target and needed on the other.
#[allow(clippy::useless_conversion)]
fn timeval_micros(tv: &libc::timeval) -> i64 {
    i64::from(tv.tv_sec)
        .saturating_mul(1_000_000)
        .saturating_add(i64::from(tv.tv_usec))
}

/// Sleep between empty reads: a quarter of the timeout, within 1..=50 ms. Short enough that a
/// burst after a quiet spell is picked up long before the kernel buffer fills (16 MiB holds
/// over 100 ms of a saturated gigabit link), long enough that an idle sensor wakes rarely.
fn poll_step(timeout: Duration) -> Duration {
    (timeout / 4).clamp(Duration::from_millis(1), Duration::from_millis(50))
}

/// Converts a config value to the `c_int` libpcap takes, naming the key if it does not fit.
fn to_c_int(iface: &str, key: &str, value: u64) -> Result<i32, CaptureError> {
    i32::try_from(value).map_err(|_| CaptureError::Live {
        iface: iface.to_string(),
        message: format!("capture.{key} = {value} is too large for libpcap"),
    })
}

/// Adds a hint to libpcap's activation messages for the two failures an operator meets most.
fn explain_open_error(err: &pcap::Error) -> String {
    let msg = err.to_string();
    let lower = msg.to_ascii_lowercase();
    if lower.contains("permission") || lower.contains("not permitted") {
        format!(
            "cannot open for capture: {msg} (run as root or grant CAP_NET_RAW and CAP_NET_ADMIN)"
        )
    } else if lower.contains("no such device") || lower.contains("doesn't exist") {
        format!("interface not found: {msg}")
    } else {
        format!("cannot open for capture: {msg}")
    }
}

impl LiveCapture {
    /// Opens `cfg.interface` for capture.
    ///
    /// Errors ([`CaptureError::Live`], naming the interface) when no interface is configured,
    /// it does not exist, the process lacks the privilege to capture, a size does not fit
    /// libpcap's types, or the BPF filter does not compile.
    pub fn open(cfg: &CaptureConfig) -> Result<LiveCapture, CaptureError> {
        let iface = match cfg.interface.as_deref().map(str::trim) {
            Some(name) if !name.is_empty() => name.to_string(),
            _ => {
                return Err(CaptureError::Live {
                    iface: "(none)".into(),
                    message: "capture.interface is not set; `run` needs the monitoring interface"
                        .into(),
                })
            }
        };
        let live_err = |message: String| CaptureError::Live {
            iface: iface.clone(),
            message,
        };

        let snaplen = to_c_int(&iface, "snaplen", u64::from(cfg.snaplen))?;
        let buffer = to_c_int(
            &iface,
            "buffer_mib",
            u64::from(cfg.buffer_mib) * 1024 * 1024,
        )?;
        let timeout = to_c_int(&iface, "timeout_ms", u64::from(cfg.timeout_ms))?;
        let inactive =
            Capture::from_device(iface.as_str()).map_err(|e| live_err(explain_open_error(&e)))?;
        let mut cap = inactive
            .snaplen(snaplen)
            .promisc(cfg.promiscuous)
            .buffer_size(buffer)
            .timeout(timeout)
            .immediate_mode(false)
            .open()
            .map_err(|e| live_err(explain_open_error(&e)))?;

        if let Some(filter) = cfg.bpf_filter.as_deref().filter(|f| !f.trim().is_empty()) {
            cap.filter(filter, true).map_err(|e| {
                live_err(format!(
                    "capture.bpf_filter {filter:?} does not compile: {e}"
                ))
            })?;
        }
        // DLT values are small non-negative numbers; a negative one would be a libpcap bug and
        // maps to a linktype the decoder counts as unknown rather than a panic here.
        let linktype = u32::try_from(cap.get_datalink().0).unwrap_or(u32::MAX);
        let cap = cap
            .setnonblock()
            .map_err(|e| live_err(format!("cannot switch to non-blocking reads: {e}")))?;
        let timeout = Duration::from_millis(u64::from(cfg.timeout_ms.max(1)));
        Ok(LiveCapture {
            iface,
            cap,
            linktype,
            timeout,
            poll_step: poll_step(timeout),
            buf: Vec::with_capacity(cfg.snaplen as usize),
            snaplen: cfg.snaplen as usize,
            totals: StatTotals::default(),
        })
    }

    /// The interface being captured.
    pub fn interface(&self) -> &str {
        &self.iface
    }

    /// The largest packet a read can return (the configured snaplen).
    pub fn snaplen(&self) -> usize {
        self.snaplen
    }

    /// The link type (DLT) of the interface, as in a pcap file header.
    pub fn linktype(&self) -> u32 {
        self.linktype
    }

    /// The next packet, or `Ok(None)` when `timeout_ms` passed with no packet (the caller uses
    /// the pause to rotate intervals on the wall clock). The packet borrows the capture's buffer
    /// until the next call.
    pub fn next_packet(&mut self) -> Result<Option<RawPacket<'_>>, CaptureError> {
        let deadline = Instant::now() + self.timeout;
        let (ts, wire_len) = loop {
            match self.cap.next_packet() {
                Ok(p) => {
                    let ts = timeval_micros(&p.header.ts);
                    self.buf.clear();
                    self.buf.extend_from_slice(p.data);
                    break (Ts(ts), p.header.len);
                }
                Err(pcap::Error::TimeoutExpired) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return Ok(None);
                    }
                    std::thread::sleep(self.poll_step.min(deadline - now));
                }
                Err(e) => {
                    return Err(CaptureError::Live {
                        iface: self.iface.clone(),
                        message: format!("read failed: {e}"),
                    })
                }
            }
        };
        Ok(Some(RawPacket {
            ts,
            linktype: self.linktype,
            data: &self.buf,
            wire_len,
        }))
    }

    /// Packets received, dropped by the kernel/libpcap for lack of buffer, and dropped by the
    /// interface, since the capture opened, as 64-bit totals. `None` if libpcap cannot say.
    pub fn stats(&mut self) -> Option<(u64, u64, u64)> {
        let s = self.cap.stats().ok()?;
        Some(self.totals.update([s.received, s.dropped, s.if_dropped]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(iface: Option<&str>) -> CaptureConfig {
        CaptureConfig {
            interface: iface.map(str::to_string),
            ..CaptureConfig::default()
        }
    }

    #[test]
    fn no_interface_configured_is_a_clear_error() {
        let e = LiveCapture::open(&cfg(None))
            .err()
            .expect("must fail")
            .to_string();
        assert!(e.contains("capture.interface"), "{e}");
        let e = LiveCapture::open(&cfg(Some("  ")))
            .err()
            .expect("must fail")
            .to_string();
        assert!(e.contains("capture.interface"), "{e}");
    }

    #[test]
    fn missing_interface_is_named() {
        let e = LiveCapture::open(&cfg(Some("osect-nope0")))
            .err()
            .expect("must fail")
            .to_string();
        assert!(e.contains("osect-nope0"), "{e}");
    }

    #[test]
    fn stat_totals_survive_wrap_around() {
        let mut t = StatTotals::default();
        assert_eq!(t.update([10, 1, 0]), (10, 1, 0));
        assert_eq!(t.update([u32::MAX, 1, 0]), (u64::from(u32::MAX), 1, 0));
        assert_eq!(t.update([4, 2, 0]), (u64::from(u32::MAX) + 5, 2, 0));
    }

    /// Opening the loopback needs capture privileges; when the test runs as root it checks
    /// the real path (link type, filter, timeout as `Ok(None)`, statistics).
    #[test]
    fn loopback_opens_when_privileged() {
        let mut c = CaptureConfig {
            timeout_ms: 50,
            ..cfg(Some("lo"))
        };
        c.bpf_filter = Some("udp port 9".into());
        let mut live = match LiveCapture::open(&c) {
            Ok(l) => l,
            Err(e) => {
                let e = e.to_string();
                assert!(e.contains("lo"), "{e}");
                eprintln!("SKIP loopback capture (not privileged?): {e}");
                return;
            }
        };
        assert_eq!(live.interface(), "lo");
        assert_eq!(live.linktype(), 1, "Linux loopback reads as Ethernet");
        // Nothing matches the filter on a quiet loopback within a few timeouts; each read
        // returns promptly (a timeout is Ok(None)) or a packet if something did match.
        for _ in 0..3 {
            if let Some(p) = live.next_packet().unwrap() {
                assert_eq!(p.linktype, 1);
            }
        }
        assert!(live.stats().is_some());

        c.bpf_filter = Some("this is not bpf".into());
        let e = LiveCapture::open(&c)
            .err()
            .expect("bad filter must fail")
            .to_string();
        assert!(
            e.contains("bpf_filter") && e.contains("this is not bpf"),
            "{e}"
        );
    }
}

//! Packet time.
//!
//! Every record carries packet time, never wall-clock time, so that `replay` and live capture
//! produce the same rows. Microseconds are what Zeek prints (six decimals) and what classic pcap
//! stores; nanosecond captures are truncated towards zero on read.

use std::fmt;

/// Microseconds since the Unix epoch, from the capture.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ts(pub i64);

/// A span of packet time, in microseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Span(pub i64);

impl Ts {
    pub const ZERO: Ts = Ts(0);

    pub fn from_secs(secs: i64) -> Ts {
        Ts(secs.saturating_mul(1_000_000))
    }

    pub fn secs(self) -> i64 {
        self.0.div_euclid(1_000_000)
    }

    pub fn since(self, earlier: Ts) -> Span {
        Span(self.0.saturating_sub(earlier.0))
    }

    pub fn plus(self, span: Span) -> Ts {
        Ts(self.0.saturating_add(span.0))
    }

    /// Start of the interval of `len` that contains this instant (intervals are aligned to the
    /// epoch, which for whole minutes is aligned to the wall clock's minutes in every zone that
    /// has a whole-minute offset).
    pub fn floor_to(self, len: Span) -> Ts {
        if len.0 <= 0 {
            return self;
        }
        Ts(self.0 - self.0.rem_euclid(len.0))
    }
}

impl Span {
    pub const fn from_secs(secs: i64) -> Span {
        Span(secs * 1_000_000)
    }

    pub const fn from_millis(ms: i64) -> Span {
        Span(ms * 1_000)
    }

    pub fn is_positive(self) -> bool {
        self.0 > 0
    }
}

/// Zeek's `time`/`interval` rendering: seconds with exactly six decimals.
fn write_fixed6(f: &mut fmt::Formatter<'_>, micros: i64) -> fmt::Result {
    let sign = if micros < 0 { "-" } else { "" };
    let m = micros.unsigned_abs();
    write!(f, "{sign}{}.{:06}", m / 1_000_000, m % 1_000_000)
}

impl fmt::Display for Ts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_fixed6(f, self.0)
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_fixed6(f, self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_six_decimals() {
        assert_eq!(Ts(1_300_475_167_096_535).to_string(), "1300475167.096535");
        assert_eq!(Span(435).to_string(), "0.000435");
        assert_eq!(Span::from_secs(120).to_string(), "120.000000");
    }

    #[test]
    fn floors_to_minutes() {
        let t = Ts(61_500_000);
        assert_eq!(t.floor_to(Span::from_secs(60)), Ts(60_000_000));
        assert_eq!(Ts(-1).floor_to(Span::from_secs(60)), Ts(-60_000_000));
    }
}

//! Waiting between failed upload rounds: exponential, capped, with jitter so that a fleet of
//! sensors behind one mobile network does not retry in lockstep when the link comes back.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// A random `u64` from the standard library's per-process hash keys (no extra crate; the
/// values only spread retries and make multipart boundaries unique, nothing secret).
pub fn random_u64() -> u64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    h.finish()
}

/// Delays `min, 2·min, 4·min, …` up to `max`, each drawn from its upper half at random
/// ("equal jitter": never shorter than half the nominal delay, so a dead link is not hammered).
#[derive(Clone, Debug)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    failures: u32,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Backoff {
        Backoff {
            min,
            max: max.max(min),
            failures: 0,
        }
    }

    /// The delay before the next try, after one more failure.
    pub fn next_delay(&mut self) -> Duration {
        let nominal = self
            .min
            .saturating_mul(1u32 << self.failures.min(20))
            .min(self.max);
        self.failures = self.failures.saturating_add(1);
        let half = nominal / 2;
        let spread = half.as_millis() as u64;
        let jitter = if spread == 0 {
            0
        } else {
            random_u64() % (spread + 1)
        };
        half + Duration::from_millis(jitter)
    }

    /// A success: the next failure starts again from `min`.
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_caps_jitters_and_resets() {
        let s = Duration::from_secs;
        let mut b = Backoff::new(s(2), s(60));
        let mut seen = Vec::new();
        for _ in 0..10 {
            seen.push(b.next_delay());
        }
        let nominal = [2, 4, 8, 16, 32, 60, 60, 60, 60, 60];
        for (d, n) in seen.iter().zip(nominal) {
            assert!(*d >= s(n) / 2 && *d <= s(n), "{d:?} for nominal {n}s");
        }
        b.reset();
        assert!(b.next_delay() <= s(2));
        // Jitter: a thousand draws of the 60 s delay are not all the same.
        let draws: std::collections::HashSet<_> = (0..1000)
            .map(|_| {
                let mut b = Backoff::new(s(60), s(60));
                b.next_delay()
            })
            .collect();
        assert!(draws.len() > 100, "{}", draws.len());
    }
}

//! Work budgets per peer: a token bucket in abstract units (for signature
//! work: about one Ed25519 verification per unit; for serving: bytes), so
//! one peer cannot make a validator spend more than its share of CPU or
//! bandwidth however it crafts its messages. Honest peers stay far below
//! the rates (README, *Certified batches*); what is over budget is dropped
//! and counted.

use std::time::Instant;

/// A token bucket.
#[derive(Clone, Debug)]
pub struct Bucket {
    tokens: f64,
    rate_per_s: f64,
    burst: f64,
    last: Instant,
}

impl Bucket {
    /// Full, refilling at `rate_per_s` up to `burst`.
    pub fn new(rate_per_s: f64, burst: f64, now: Instant) -> Bucket {
        Bucket {
            tokens: burst,
            rate_per_s,
            burst,
            last: now,
        }
    }

    /// Take `cost` units if there are that many.
    pub fn take(&mut self, cost: f64, now: Instant) -> bool {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + dt * self.rate_per_s).min(self.burst);
        if self.tokens >= cost {
            self.tokens -= cost;
            true
        } else {
            false
        }
    }
}

/// Signature-work units a peer may make us spend per second, and at once.
pub const SIG_UNITS_PER_S: f64 = 5_000.0;
/// Burst of [`SIG_UNITS_PER_S`].
pub const SIG_UNITS_BURST: f64 = 10_000.0;
/// Bytes of batches we serve one peer per second, and at once.
pub const SERVE_BYTES_PER_S: f64 = 32.0 * 1024.0 * 1024.0;
/// Burst of [`SERVE_BYTES_PER_S`].
pub const SERVE_BYTES_BURST: f64 = 64.0 * 1024.0 * 1024.0;

/// Both budgets of one peer.
#[derive(Clone, Debug)]
pub struct PeerBudget {
    /// Signature work (votes, certificates, batch decoding and hashing).
    pub sig: Bucket,
    /// Batches served to it.
    pub serve: Bucket,
}

impl PeerBudget {
    /// Full budgets.
    pub fn new(now: Instant) -> PeerBudget {
        PeerBudget {
            sig: Bucket::new(SIG_UNITS_PER_S, SIG_UNITS_BURST, now),
            serve: Bucket::new(SERVE_BYTES_PER_S, SERVE_BYTES_BURST, now),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_bucket_refills_at_its_rate_up_to_its_burst() {
        let t0 = Instant::now();
        let mut b = Bucket::new(100.0, 50.0, t0);
        assert!(b.take(50.0, t0));
        assert!(!b.take(1.0, t0), "empty");
        assert!(
            b.take(10.0, t0 + Duration::from_millis(100)),
            "10 back after 0.1 s"
        );
        assert!(!b.take(1.0, t0 + Duration::from_millis(100)));
        assert!(
            !b.take(51.0, t0 + Duration::from_secs(10)),
            "never above the burst"
        );
        assert!(b.take(50.0, t0 + Duration::from_secs(10)));
    }
}

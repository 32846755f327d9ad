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

/// Bytes of catch-up segments we serve one observer per second, and at
/// once: half a validator's serving budget (an observer is served after
/// every validator, from a queue of its own).
pub const OBSERVER_SERVE_BYTES_PER_S: f64 = 16.0 * 1024.0 * 1024.0;
/// Burst of [`OBSERVER_SERVE_BYTES_PER_S`] (one full segment and then some).
pub const OBSERVER_SERVE_BYTES_BURST: f64 = 32.0 * 1024.0 * 1024.0;

/// Consensus-check units a peer may make us spend per second (BLS work on
/// the core: one pairing-based verification is about [`BLS_UNITS`]).
pub const CONSENSUS_UNITS_PER_S: f64 = 10_000.0;
/// Burst of [`CONSENSUS_UNITS_PER_S`].
pub const CONSENSUS_UNITS_BURST: f64 = 20_000.0;
/// One BLS signature or aggregate verification, in units of one Ed25519
/// verification (measured: ~1 ms against ~25 us).
pub const BLS_UNITS: f64 = 40.0;

/// Every budget of one peer.
#[derive(Clone, Debug)]
pub struct PeerBudget {
    /// Signature work (votes, certificates, batch decoding and hashing).
    pub sig: Bucket,
    /// Batches, catch-up segments and block sync answers served to it.
    pub serve: Bucket,
    /// Consensus messages' checks (QCs, timeouts, TCs, commit proofs).
    pub consensus: Bucket,
}

impl PeerBudget {
    /// Full budgets.
    pub fn new(now: Instant) -> PeerBudget {
        PeerBudget {
            sig: Bucket::new(SIG_UNITS_PER_S, SIG_UNITS_BURST, now),
            serve: Bucket::new(SERVE_BYTES_PER_S, SERVE_BYTES_BURST, now),
            consensus: Bucket::new(CONSENSUS_UNITS_PER_S, CONSENSUS_UNITS_BURST, now),
        }
    }
}

/// The most a consensus message can make the engine verify, in units:
/// charged before the engine sees it, whatever its caches then spare. An
/// honest peer sends one proposal or vote per view and a timeout per
/// failed view: far under [`CONSENSUS_UNITS_PER_S`] at hundreds of views
/// a second.
pub fn consensus_cost<S: plume_consensus::Scheme>(
    m: &plume_protocol::consensus::Message<S>,
) -> f64 {
    use plume_protocol::consensus::Message as M;
    match m {
        // Its justify QC (usually cached: we formed or saw it), and the
        // timeout certificate it may carry (checked before the leader).
        M::Proposal(p) => {
            BLS_UNITS / 4.0 + BLS_UNITS * p.tc.as_ref().map_or(0, |t| t.entries.len()) as f64
        }
        // Aggregated with the others at quorum.
        M::Vote(_) => 2.0,
        M::Timeout(_) => BLS_UNITS,
        M::Certificates { tc, .. } => {
            BLS_UNITS * (1.0 + tc.as_ref().map_or(0, |t| t.entries.len()) as f64)
        }
        M::SyncRequest { .. } => 1.0,
        M::SyncResponse { blocks } => 1.0 + BLS_UNITS / 4.0 * blocks.len() as f64,
        M::EpochProof(_) => 3.0 * BLS_UNITS,
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

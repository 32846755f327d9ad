//! Counters the node exports at `/metrics`. Plain relaxed atomics:
//! cheap to bump on the data path, readable from any thread.

use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($live:ident, $snap:ident, $what:literal; $($name:ident: $doc:literal),* $(,)?) => {
        #[doc = $what]
        #[derive(Debug, Default)]
        pub struct $live { $(#[doc = $doc] pub $name: ::std::sync::atomic::AtomicU64,)* }

        /// A copy of the live counters at one instant.
        #[derive(Debug, Default, Clone, PartialEq, Eq)]
        pub struct $snap { $(#[doc = $doc] pub $name: u64,)* }

        impl $live {
            /// Read every counter.
            pub fn snapshot(&self) -> $snap {
                $snap { $($name: self.$name.load(::std::sync::atomic::Ordering::Relaxed),)* }
            }
        }

        impl $snap {
            /// `(name, value)` pairs, for exporters.
            pub fn pairs(&self) -> Vec<(&'static str, u64)> {
                vec![$((stringify!($name), self.$name),)*]
            }

            /// `(name, help, value)` triples, for exporters.
            pub fn described(&self) -> Vec<(&'static str, &'static str, u64)> {
                vec![$((stringify!($name), $doc, self.$name),)*]
            }
        }
    };
}

pub(crate) use counters;

counters! {
    Metrics, MetricsSnapshot, "Live counters of one endpoint.";
    handshakes_ok: "Handshakes that produced a session.",
    handshakes_failed: "Handshakes that failed for a cryptographic or format reason (includes replays).",
    handshakes_not_allowed: "Handshakes refused because the peer key is not in the allow-list.",
    handshakes_wrong_chain: "Handshakes refused because of another chain id.",
    handshakes_rate_limited: "Inbound connections from unknown addresses dropped by the rate limiter.",
    handshakes_timed_out: "Handshakes that did not finish in time.",
    handshakes_overload: "Inbound connections dropped because too many handshakes were in progress.",
    sessions_opened: "Sessions established.",
    sessions_closed: "Sessions ended (any reason).",
    sessions_idle_closed: "Sessions closed by the idle timeout.",
    malformed_frames: "Inbound records or frames that failed validation or authentication.",
    frames_sent: "Data frames written.",
    frames_received: "Data frames delivered.",
    bytes_sent: "Record bytes written, prefixes included.",
    bytes_received: "Record bytes read, prefixes included.",
    dials: "Outbound connection attempts.",
    dial_failures: "Outbound attempts that failed (connect or handshake).",
    send_queue_full: "try_send calls refused because the peer queue was full.",
    pool_misses: "Buffers allocated because the pool was empty.",
}

/// Add one.
pub(crate) fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// Add `n`.
pub(crate) fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

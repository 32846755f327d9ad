//! How the core hands work to a role whose queue may be full without ever
//! blocking its thread (the core also drives the network): `try_send`, and
//! what does not fit waits in an ordered local backlog, retried on every
//! tick and whenever the role reports progress. A backlog has a bound;
//! what passes it is shed by the owner's policy:
//!
//! - finalized blocks for execution ([`ExecFeed`]): past the bound the
//!   block is dropped, and so is every later one until execution has
//!   passed the highest dropped height (catch-up from the peers' stores
//!   closes the gap: the core asks once the engine's committed height is
//!   ahead of execution and execution is idle), so execution never sees a
//!   gap in heights;
//! - batch log items ([`Backlog`]): past the bound an append is dropped
//!   (that batch is never voted for: it is fetched again or expires) and a
//!   retire is dropped (its record stays until the log is compacted).

use std::collections::VecDeque;

/// The receiving role is gone (it stopped or failed).
#[derive(Debug, PartialEq, Eq)]
pub struct Gone;

/// Finalized blocks waiting for a full exec queue.
pub const EXEC_BACKLOG_MAX: usize = 65_536;
/// Batch log items waiting for a full log queue.
pub const LOG_BACKLOG_MAX: usize = 65_536;

/// An ordered backlog in front of a bounded channel.
#[derive(Debug)]
pub struct Backlog<T> {
    items: VecDeque<T>,
    max: usize,
}

/// What a push did.
#[derive(Debug, PartialEq, Eq)]
pub enum Pushed {
    /// Sent or queued.
    Queued,
    /// Over the bound: dropped.
    Shed,
}

impl<T> Backlog<T> {
    /// An empty backlog of at most `max` items.
    pub fn new(max: usize) -> Self {
        Backlog {
            items: VecDeque::new(),
            max,
        }
    }

    /// Items waiting.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Send what waits, in order, until the channel is full; `Err` when
    /// the receiver is gone.
    pub fn flush(&mut self, tx: &flume::Sender<T>) -> Result<(), Gone> {
        while let Some(item) = self.items.pop_front() {
            match tx.try_send(item) {
                Ok(()) => {}
                Err(flume::TrySendError::Full(item)) => {
                    self.items.push_front(item);
                    return Ok(());
                }
                Err(flume::TrySendError::Disconnected(_)) => return Err(Gone),
            }
        }
        Ok(())
    }

    /// Send `item` after what waits, or queue it, or shed it when the
    /// backlog is at its bound.
    pub fn push(&mut self, item: T, tx: &flume::Sender<T>) -> Result<Pushed, Gone> {
        self.flush(tx)?;
        if self.items.is_empty() {
            match tx.try_send(item) {
                Ok(()) => return Ok(Pushed::Queued),
                Err(flume::TrySendError::Full(i)) => self.items.push_back(i),
                Err(flume::TrySendError::Disconnected(_)) => return Err(Gone),
            }
            return Ok(Pushed::Queued);
        }
        if self.items.len() >= self.max {
            return Ok(Pushed::Shed);
        }
        self.items.push_back(item);
        Ok(Pushed::Queued)
    }

    /// Drop waiting items for which `stale` holds.
    pub fn retain(&mut self, keep: impl FnMut(&T) -> bool) {
        self.items.retain(keep);
    }
}

/// Finalized blocks for execution, in height order, never with a gap.
#[derive(Debug)]
pub struct ExecFeed<T> {
    backlog: Backlog<T>,
    /// The highest height dropped while the backlog was full.
    dropped: Option<u64>,
}

impl<T> ExecFeed<T> {
    /// An empty feed with a backlog of at most `max` blocks.
    pub fn new(max: usize) -> Self {
        ExecFeed {
            backlog: Backlog::new(max),
            dropped: None,
        }
    }

    /// Blocks waiting in the backlog.
    pub fn backlog(&self) -> usize {
        self.backlog.len()
    }

    /// Whether blocks are being dropped until execution passes a height.
    pub fn gap(&self) -> Option<u64> {
        self.dropped
    }

    /// Hand over the block at `height`; `executed` is the highest height
    /// execution reported. `Ok(false)`: dropped (counted by the caller).
    pub fn push(
        &mut self,
        height: u64,
        item: T,
        executed: u64,
        tx: &flume::Sender<T>,
    ) -> Result<bool, Gone> {
        if let Some(d) = self.dropped {
            if executed < d {
                self.dropped = Some(d.max(height));
                return Ok(false);
            }
            self.dropped = None;
        }
        match self.backlog.push(item, tx)? {
            Pushed::Queued => Ok(true),
            Pushed::Shed => {
                self.dropped = Some(height);
                Ok(false)
            }
        }
    }

    /// Retry what waits.
    pub fn flush(&mut self, tx: &flume::Sender<T>) -> Result<(), Gone> {
        self.backlog.flush(tx)
    }

    /// Execution reached `executed` by other means (catch-up): drop the
    /// waiting blocks at or below it.
    pub fn caught_up(&mut self, executed: u64, height_of: impl Fn(&T) -> u64) {
        self.backlog.retain(|t| height_of(t) > executed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_never_blocks_and_order_is_kept() {
        let (tx, rx) = flume::bounded::<u64>(2);
        let mut b = Backlog::new(100);
        for i in 0..10 {
            assert_eq!(b.push(i, &tx), Ok(Pushed::Queued));
        }
        assert_eq!(rx.len(), 2);
        assert_eq!(b.len(), 8);
        let mut got = Vec::new();
        while got.len() < 10 {
            while let Ok(v) = rx.try_recv() {
                got.push(v);
            }
            b.flush(&tx).unwrap();
        }
        assert_eq!(got, (0..10).collect::<Vec<_>>());
        drop(rx);
        assert_eq!(b.push(11, &tx), Err(Gone), "a gone receiver is an error");
    }

    #[test]
    fn past_its_bound_the_backlog_sheds() {
        let (tx, _rx) = flume::bounded::<u64>(1);
        let mut b = Backlog::new(3);
        let pushed: Vec<Pushed> = (0..6).map(|i| b.push(i, &tx).unwrap()).collect();
        assert_eq!(pushed.iter().filter(|p| **p == Pushed::Shed).count(), 2);
        assert_eq!(b.len(), 3);
    }

    #[test]
    fn execution_never_sees_a_gap_after_blocks_were_dropped() {
        // Queue of 2, backlog of 2: heights 1-4 fit, 5 is dropped, and so
        // is every later block until execution reports 5 or more.
        let (tx, rx) = flume::bounded::<u64>(2);
        let mut f = ExecFeed::new(2);
        for h in 1..=4 {
            assert_eq!(f.push(h, h, 0, &tx), Ok(true));
        }
        assert_eq!(f.push(5, 5, 0, &tx), Ok(false));
        assert_eq!(f.gap(), Some(5));
        // Execution drains 1-4 (reports 4): still short of 5.
        let mut executed = 0;
        while executed < 4 {
            while let Ok(h) = rx.try_recv() {
                assert_eq!(h, executed + 1, "contiguous");
                executed = h;
            }
            f.flush(&tx).unwrap();
        }
        assert_eq!(f.push(6, 6, executed, &tx), Ok(false), "still in the gap");
        assert_eq!(f.gap(), Some(6));
        // Catch-up executes up to 7; the next block is 8 and is sent.
        executed = 7;
        f.caught_up(executed, |h| *h);
        assert_eq!(f.push(7, 7, executed, &tx), Ok(true));
        assert_eq!(f.gap(), None);
        assert_eq!(f.push(8, 8, executed, &tx), Ok(true));
        let sent: Vec<u64> = rx.drain().collect();
        assert_eq!(
            sent,
            vec![7, 8],
            "7 is stale: execution skips it, 8 follows 7"
        );
    }
}

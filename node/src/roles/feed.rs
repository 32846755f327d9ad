//! How the core hands work to a role whose queue may be full without ever
//! blocking its thread (the core also drives the network): `try_send`, and
//! what does not fit waits in an ordered local backlog, retried on every
//! tick and whenever the role reports progress. A backlog has a bound;
//! what passes it is shed by the owner's policy:
//!
//! - finalized blocks for execution ([`ExecFeed`]): past the bound the
//!   *oldest* waiting block is dropped (the newest are kept: execution
//!   needs them once it is back near the tip) and nothing is sent until
//!   execution has passed the highest dropped height (catch-up from the
//!   peers' stores closes the gap: the core asks once the engine's
//!   committed height is ahead of execution and execution is idle), so
//!   execution never sees a gap in heights;
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
}

/// Finalized blocks for execution, in height order, never with a gap.
///
/// Past its bound the backlog drops its *oldest* block (keeping the
/// newest, the ones execution needs once it is back near the tip) and
/// remembers the highest height dropped; nothing more is sent until
/// execution (by catch-up from the peers' stores) has passed it. Blocks at
/// or below what execution reached are dropped as stale.
#[derive(Debug)]
pub struct ExecFeed<T> {
    backlog: VecDeque<(u64, T)>,
    max: usize,
    /// The highest height dropped from the front of the backlog.
    gap_through: Option<u64>,
}

impl<T> ExecFeed<T> {
    /// An empty feed with a backlog of at most `max` blocks.
    pub fn new(max: usize) -> Self {
        ExecFeed {
            backlog: VecDeque::new(),
            max: max.max(1),
            gap_through: None,
        }
    }

    /// Blocks waiting in the backlog.
    pub fn backlog(&self) -> usize {
        self.backlog.len()
    }

    /// Whether the feed waits for execution to pass a dropped height (by
    /// catch-up) before it sends anything.
    pub fn gap(&self) -> Option<u64> {
        self.gap_through
    }

    /// Hand over the block at `height`; `executed` is the highest height
    /// execution reported. `Ok(false)`: a block was dropped (counted by the
    /// caller).
    pub fn push(
        &mut self,
        height: u64,
        item: T,
        executed: u64,
        tx: &flume::Sender<T>,
    ) -> Result<bool, Gone> {
        self.backlog.push_back((height, item));
        let mut kept = true;
        if self.backlog.len() > self.max {
            if let Some((h, _)) = self.backlog.pop_front() {
                self.gap_through = Some(self.gap_through.map_or(h, |g| g.max(h)));
                kept = false;
            }
        }
        self.flush(executed, tx)?;
        Ok(kept)
    }

    /// Send what waits, in order, unless a gap must be closed first.
    pub fn flush(&mut self, executed: u64, tx: &flume::Sender<T>) -> Result<(), Gone> {
        if let Some(g) = self.gap_through {
            if executed < g {
                return Ok(());
            }
            self.gap_through = None;
        }
        while let Some((h, item)) = self.backlog.pop_front() {
            if h <= executed && executed > 0 {
                continue; // executed by other means (catch-up)
            }
            match tx.try_send(item) {
                Ok(()) => {}
                Err(flume::TrySendError::Full(item)) => {
                    self.backlog.push_front((h, item));
                    return Ok(());
                }
                Err(flume::TrySendError::Disconnected(_)) => return Err(Gone),
            }
        }
        Ok(())
    }

    /// Whether blocks wait that could be sent now (no gap to close first).
    pub fn flushable(&self) -> bool {
        !self.backlog.is_empty() && self.gap_through.is_none()
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
        // Queue of 2, backlog of 3. Heights 1-2 go to the queue, 3-5 wait;
        // 6 and 7 push 3 and 4 out (dropped): a gap through 4.
        let (tx, rx) = flume::bounded::<u64>(2);
        let mut f = ExecFeed::new(3);
        let mut dropped = 0;
        for h in 1..=7 {
            if !f.push(h, h, 0, &tx).unwrap() {
                dropped += 1;
            }
        }
        assert_eq!(dropped, 2);
        assert_eq!(f.gap(), Some(4));
        assert_eq!(f.backlog(), 3, "the newest kept: 5, 6, 7");
        // Execution drains 1-2 (reports 2): still short of 4, nothing sent.
        let got: Vec<u64> = rx.drain().collect();
        assert_eq!(got, vec![1, 2]);
        f.flush(2, &tx).unwrap();
        assert!(rx.is_empty(), "3 and 4 are missing: 5 must wait");
        assert!(!f.flushable(), "the core may start catch-up");
        // Catch-up executes through 5: 5 is stale, 6 and 7 follow.
        f.flush(5, &tx).unwrap();
        assert_eq!(f.gap(), None);
        let got: Vec<u64> = rx.drain().collect();
        assert_eq!(got, vec![6, 7]);
        // Catch-up reaching the tip while the gap is open: nothing stale is
        // sent, the next block follows.
        let mut f = ExecFeed::new(1);
        let (tx, rx) = flume::bounded::<u64>(1);
        for h in 1..=4 {
            let _ = f.push(h, h, 0, &tx);
        }
        assert_eq!(rx.drain().collect::<Vec<_>>(), vec![1]);
        assert_eq!(f.gap(), Some(3));
        f.push(5, 5, 4, &tx).unwrap();
        assert_eq!(rx.drain().collect::<Vec<_>>(), vec![5], "4 was stale");
    }
}

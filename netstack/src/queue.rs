//! Bounded per-channel queues with strict priority: [`Channel::Consensus`]
//! is always popped before [`Channel::Bulk`]. Producers wait for space
//! (backpressure) or get the item back (`try_push`).

use crate::frame::{Channel, CHANNELS};
use crate::util::Signal;
use glommio::sync::Semaphore;
use std::cell::RefCell;
use std::collections::VecDeque;

/// A bounded priority queue for one executor.
pub struct PrioQueue<T> {
    lanes: [RefCell<VecDeque<T>>; CHANNELS],
    space: [Semaphore; CHANNELS],
    capacity: usize,
    pub(crate) ready: Signal,
}

impl<T> std::fmt::Debug for PrioQueue<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PrioQueue(len {:?}, cap {})", self.lens(), self.capacity)
    }
}

impl<T> PrioQueue<T> {
    /// `capacity` items per channel.
    pub fn new(capacity: usize) -> Self {
        assert!(capacity > 0);
        PrioQueue {
            lanes: std::array::from_fn(|_| RefCell::new(VecDeque::with_capacity(capacity))),
            space: std::array::from_fn(|_| Semaphore::new(capacity as u64)),
            capacity,
            ready: Signal::default(),
        }
    }

    /// Items per channel.
    pub fn lens(&self) -> [usize; CHANNELS] {
        std::array::from_fn(|i| self.lanes[i].borrow().len())
    }

    /// Whether any item is queued.
    pub fn is_empty(&self) -> bool {
        self.lanes.iter().all(|l| l.borrow().is_empty())
    }

    /// Push, waiting while the channel is full.
    pub async fn push(&self, ch: Channel, item: T) {
        self.space[ch.index()]
            .acquire(1)
            .await
            .expect("queue semaphores are never closed");
        self.push_reserved(ch, item);
    }

    /// Push if there is room, else hand the item back.
    pub fn try_push(&self, ch: Channel, item: T) -> Result<(), T> {
        match self.space[ch.index()].try_acquire(1) {
            Ok(true) => {
                self.push_reserved(ch, item);
                Ok(())
            }
            _ => Err(item),
        }
    }

    fn push_reserved(&self, ch: Channel, item: T) {
        let mut lane = self.lanes[ch.index()].borrow_mut();
        assert!(lane.len() < self.capacity, "space permit guarantees room");
        lane.push_back(item);
        drop(lane);
        self.ready.notify();
    }

    /// Pop the highest-priority item.
    pub fn pop(&self) -> Option<(Channel, T)> {
        for ch in Channel::ALL {
            let item = self.lanes[ch.index()].borrow_mut().pop_front();
            if let Some(item) = item {
                self.space[ch.index()].signal(1);
                return Some((ch, item));
            }
        }
        None
    }

    /// Pop, waiting while empty.
    pub async fn pop_wait(&self) -> (Channel, T) {
        loop {
            let seen = self.ready.version();
            if let Some(x) = self.pop() {
                return x;
            }
            self.ready.changed_since(seen).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consensus_first_and_bounded() {
        glommio::LocalExecutor::default().run(async {
            let q = PrioQueue::new(2);
            q.push(Channel::Bulk, 1).await;
            q.push(Channel::Bulk, 2).await;
            assert_eq!(q.try_push(Channel::Bulk, 3), Err(3), "bulk lane full");
            q.push(Channel::Consensus, 10).await;
            assert_eq!(q.pop(), Some((Channel::Consensus, 10)));
            assert_eq!(q.pop(), Some((Channel::Bulk, 1)));
            assert_eq!(q.try_push(Channel::Bulk, 3), Ok(()), "room after a pop");
            assert_eq!(q.lens(), [0, 2]);
        });
    }
}

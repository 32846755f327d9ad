//! Buffers from a pool sized at start-up. A frame is copied once into a
//! pooled buffer on send and decrypted once into one on receive; buffers
//! go back to the pool when dropped, so the steady state allocates nothing.

use crate::metrics::{inc, Metrics};
use std::cell::RefCell;
use std::ops::{Deref, DerefMut};
use std::rc::Rc;
use std::sync::Arc;

struct Shared {
    free: RefCell<Vec<Vec<u8>>>,
    count: usize,
    keep_bytes_max: usize,
    metrics: Arc<Metrics>,
}

/// A pool of byte buffers for one executor (not `Send`).
#[derive(Clone)]
pub struct BufPool(Rc<Shared>);

impl std::fmt::Debug for BufPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BufPool({} free of {})", self.free(), self.0.count)
    }
}

impl BufPool {
    /// `count` buffers of `initial_bytes` capacity each, allocated now. A
    /// buffer that grew past `keep_bytes_max` is freed instead of kept.
    pub fn new(
        count: usize,
        initial_bytes: usize,
        keep_bytes_max: usize,
        metrics: Arc<Metrics>,
    ) -> Self {
        let free = (0..count)
            .map(|_| Vec::with_capacity(initial_bytes))
            .collect();
        BufPool(Rc::new(Shared {
            free: RefCell::new(free),
            count,
            keep_bytes_max,
            metrics,
        }))
    }

    /// An empty buffer (from the pool when one is free).
    pub fn get(&self) -> PooledBuf {
        let v = match self.0.free.borrow_mut().pop() {
            Some(v) => v,
            None => {
                inc(&self.0.metrics.pool_misses);
                Vec::new()
            }
        };
        PooledBuf {
            v,
            pool: self.0.clone(),
        }
    }

    /// Free buffers now.
    pub fn free(&self) -> usize {
        self.0.free.borrow().len()
    }
}

/// A buffer that returns to its pool on drop.
pub struct PooledBuf {
    v: Vec<u8>,
    pool: Rc<Shared>,
}

impl std::fmt::Debug for PooledBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PooledBuf({} bytes)", self.v.len())
    }
}

impl Deref for PooledBuf {
    type Target = Vec<u8>;
    fn deref(&self) -> &Vec<u8> {
        &self.v
    }
}

impl DerefMut for PooledBuf {
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        &mut self.v
    }
}

impl Drop for PooledBuf {
    fn drop(&mut self) {
        let mut v = std::mem::take(&mut self.v);
        let mut free = self.pool.free.borrow_mut();
        if v.capacity() <= self.pool.keep_bytes_max && free.len() < self.pool.count {
            v.clear();
            free.push(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_return_and_misses_are_counted() {
        let m = Arc::new(Metrics::default());
        let pool = BufPool::new(2, 16, 64, m.clone());
        let mut a = pool.get();
        a.extend_from_slice(b"abc");
        let b = pool.get();
        assert_eq!(pool.free(), 0);
        let c = pool.get();
        assert_eq!(m.snapshot().pool_misses, 1);
        drop((a, b, c));
        assert_eq!(pool.free(), 2, "pool never grows past its size");
        assert!(pool.get().is_empty(), "returned buffers are cleared");
        let mut big = pool.get();
        big.resize(1000, 0);
        drop(big);
        assert_eq!(pool.free(), 1, "an oversized buffer is not kept");
    }
}

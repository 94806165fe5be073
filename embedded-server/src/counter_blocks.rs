//! Per-process counter blocks in one shared memory mapping: block 0 for the parent, block w+1 for process w. Server and load generator both lay their counters out this way.

use std::marker::PhantomData;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use crate::sys::shm::SharedU64s;

/// Number of u64s for `workers` processes of `block` counters each, plus the parent's block.
pub fn len(block: usize, workers: usize) -> usize {
    block * (workers + 1)
}

/// The shared counters of a parent and its worker processes. Each worker writes only its own
/// block (relaxed stores: one writer per counter), everyone may read every block.
#[derive(Debug, Clone)]
pub struct Blocks {
    shm: Arc<SharedU64s>,
    workers: usize,
    block: usize,
}

impl Blocks {
    pub fn new(shm: SharedU64s, workers: usize, block: usize) -> Self {
        assert!(shm.len() >= len(block, workers));
        Blocks {
            shm: Arc::new(shm),
            workers,
            block,
        }
    }

    pub fn workers(&self) -> usize {
        self.workers
    }

    pub fn shm_fd(&self) -> std::os::fd::RawFd {
        self.shm.raw_fd()
    }

    /// A counter of the parent's block.
    pub fn global(&self, i: usize) -> u64 {
        self.shm.get(i).load(Relaxed)
    }

    pub fn set_global(&self, i: usize, v: u64) {
        self.shm.get(i).store(v, Relaxed)
    }

    pub fn get(&self, worker: usize, i: usize) -> u64 {
        self.at(worker, i).load(Relaxed)
    }

    /// Sets a counter of `worker`. Only that worker (or the parent once it is dead) writes.
    pub fn set(&self, worker: usize, i: usize, v: u64) {
        self.at(worker, i).store(v, Relaxed)
    }

    pub fn add(&self, worker: usize, i: usize, n: u64) {
        let a = self.at(worker, i);
        a.store(a.load(Relaxed).wrapping_add(n), Relaxed)
    }

    pub fn sub(&self, worker: usize, i: usize, n: u64) {
        let a = self.at(worker, i);
        a.store(a.load(Relaxed).saturating_sub(n), Relaxed)
    }

    fn at(&self, worker: usize, i: usize) -> &std::sync::atomic::AtomicU64 {
        debug_assert!(i < self.block);
        self.shm.get(self.block * (worker + 1) + i)
    }
}

/// A counter layout: the number of u64s in each process's block. The server's metrics and the
/// load generator's board are each a [`Board`] over their own layout.
pub trait Layout {
    const BLOCK: usize;
}

/// The shared counters of one kind of process group, laid out by `L`. The domain methods (close
/// reasons, error classes, snapshots) are inherent impls on `Board<TheirLayout>` next to their
/// counter indices; everything else is [`Blocks`] (through `Deref`).
pub struct Board<L>(Blocks, PhantomData<L>);

impl<L: Layout> Board<L> {
    pub fn new(shm: SharedU64s, workers: usize) -> Self {
        Board(Blocks::new(shm, workers, L::BLOCK), PhantomData)
    }

    /// Number of u64s the mapping needs for `workers` processes.
    pub fn shm_len(workers: usize) -> usize {
        len(L::BLOCK, workers)
    }
}

impl<L> Clone for Board<L> {
    fn clone(&self) -> Self {
        Board(self.0.clone(), PhantomData)
    }
}

impl<L> std::fmt::Debug for Board<L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl<L> std::ops::Deref for Board<L> {
    type Target = Blocks;
    fn deref(&self) -> &Blocks {
        &self.0
    }
}

//! The ring that carries a worker's flow records to the control thread (issue 9 hand-off), in
//! batches.
//!
//! One `ArrayQueue` push per record cost the worker a third of its handshake rate
//! (`clua-bench policies`, hand-off line: 2.64 M handshakes/s off, 1.74 M/s with a push per
//! record, the consumer on the other core): every push is a compare-and-swap on a cache line the
//! control thread's pops keep taking away. Here the worker fills a batch of its own (plain
//! stores, no sharing) and publishes it whole, once per loop or when it is full: one queue
//! operation per batch, not per record. Batches come from a free list allocated at creation and
//! go back to it once the control thread has read them, so nothing allocates afterwards.
//! crossbeam's `ArrayQueue` has no batch push, and a hand-written SPSC ring would need `unsafe`
//! outside `dpdk/`; a queue of boxed batches needs neither.
//!
//! Invariants: every batch is in exactly one place (the free list, the full queue, the writer's
//! hands, or the reader's until it recycles it), so the full queue, sized for all of them, never
//! refuses a push; a record is either in a batch or counted as dropped by the writer's caller.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use clua_pipeline::handoff::FlowRecord;
use crossbeam_queue::ArrayQueue;

/// The most records a batch holds.
pub const MAX_BATCH: usize = 64;

/// Up to [`MAX_BATCH`] records.
#[derive(Debug)]
pub struct RecordBatch {
    len: usize,
    records: [FlowRecord; MAX_BATCH],
}

impl RecordBatch {
    fn new() -> Box<RecordBatch> {
        Box::new(RecordBatch {
            len: 0,
            records: [FlowRecord::default(); MAX_BATCH],
        })
    }

    /// The records in the batch.
    pub fn records(&self) -> &[FlowRecord] {
        &self.records[..self.len]
    }
}

/// A bounded ring of record batches from one worker (the only producer, through its
/// [`RecordWriter`]) to the control thread (the only consumer). See the module docs.
#[derive(Debug)]
pub struct RecordRing {
    full: ArrayQueue<Box<RecordBatch>>,
    free: ArrayQueue<Box<RecordBatch>>,
    batch: usize,
    /// Records in published batches (one atomic add per batch each way).
    waiting: AtomicUsize,
}

impl RecordRing {
    /// A ring of at least `records` records in batches of `batch` (clamped to
    /// 1..=[`MAX_BATCH`]). Allocates every batch now.
    pub fn new(records: usize, batch: usize) -> Arc<RecordRing> {
        let batch = batch.clamp(1, MAX_BATCH);
        let batches = records.div_ceil(batch).max(1);
        let ring = RecordRing {
            full: ArrayQueue::new(batches),
            free: ArrayQueue::new(batches),
            batch,
            waiting: AtomicUsize::new(0),
        };
        for _ in 0..batches {
            // Cannot fail: the free list holds exactly `batches`.
            let _ = ring.free.push(RecordBatch::new());
        }
        Arc::new(ring)
    }

    /// Records the ring holds when every batch is full.
    pub fn capacity(&self) -> usize {
        self.free.capacity() * self.batch
    }

    /// Records published and not yet taken by the reader.
    pub fn len(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Whether no published batch waits for the reader.
    pub fn is_empty(&self) -> bool {
        self.full.is_empty()
    }

    /// The reader: hands the records of up to `max_batches` published batches to `f`, one
    /// batch per call, and recycles them. Returns the records handed.
    pub fn drain(&self, max_batches: usize, mut f: impl FnMut(&[FlowRecord])) -> usize {
        let mut n = 0;
        for _ in 0..max_batches {
            let Some(mut b) = self.full.pop() else { break };
            f(b.records());
            n += b.len;
            self.waiting.fetch_sub(b.len, Ordering::Relaxed);
            b.len = 0;
            // Cannot fail: the free list has room for every batch.
            let _ = self.free.push(b);
        }
        n
    }

    /// The reader: every published record (tests; allocates).
    pub fn drain_all(&self) -> Vec<FlowRecord> {
        let mut out = Vec::new();
        self.drain(usize::MAX, |r| out.extend_from_slice(r));
        out
    }
}

/// The worker's end of a [`RecordRing`]: the batch it is filling.
#[derive(Debug)]
pub struct RecordWriter {
    ring: Arc<RecordRing>,
    current: Option<Box<RecordBatch>>,
}

impl RecordWriter {
    /// The writer of `ring` (one per ring).
    pub fn new(ring: Arc<RecordRing>) -> RecordWriter {
        RecordWriter {
            ring,
            current: None,
        }
    }

    /// Adds a record; `false` if the ring has no room (every batch published or being read):
    /// the caller counts it, and never waits.
    #[inline]
    pub fn push(&mut self, rec: FlowRecord) -> bool {
        if self.current.is_none() {
            self.current = self.ring.free.pop();
        }
        let Some(b) = self.current.as_mut() else {
            return false;
        };
        b.records[b.len] = rec;
        b.len += 1;
        if b.len == self.ring.batch {
            self.flush();
        }
        true
    }

    /// Publishes the batch being filled, if it has records.
    #[inline]
    pub fn flush(&mut self) {
        if self.current.as_ref().is_some_and(|b| b.len > 0) {
            if let Some(b) = self.current.take() {
                self.ring.waiting.fetch_add(b.len, Ordering::Relaxed);
                // Cannot fail: the full queue has room for every batch.
                let _ = self.ring.full.push(b);
            }
        }
    }

    /// Records that can be pushed now without a loss: the rest of the current batch and the
    /// free batches.
    #[inline]
    pub fn room(&self) -> usize {
        let current = self.current.as_ref().map_or(0, |b| self.ring.batch - b.len);
        current + self.ring.free.len() * self.ring.batch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(i: u16) -> FlowRecord {
        let mut r = FlowRecord::default();
        r.key.src_port = i;
        r
    }

    #[test]
    fn batches_carry_every_record_in_order_and_come_back() {
        let ring = RecordRing::new(8, 4);
        assert_eq!(ring.capacity(), 8);
        let mut w = RecordWriter::new(ring.clone());
        assert_eq!(w.room(), 8);
        for i in 0..5 {
            assert!(w.push(rec(i)));
        }
        // The first batch went when full; the second waits for a flush.
        assert_eq!(ring.len(), 4);
        assert_eq!(w.room(), 3);
        w.flush();
        assert_eq!(ring.len(), 5);
        let got: Vec<u16> = ring.drain_all().iter().map(|r| r.key.src_port).collect();
        assert_eq!(got, vec![0, 1, 2, 3, 4]);
        assert!(ring.is_empty());
        assert_eq!(w.room(), 8, "both batches are free again");
    }

    #[test]
    fn a_full_ring_refuses_without_blocking_and_recovers() {
        let ring = RecordRing::new(4, 2);
        let mut w = RecordWriter::new(ring.clone());
        let pushed = (0..10).filter(|i| w.push(rec(*i))).count();
        assert_eq!(pushed, 4);
        assert_eq!(w.room(), 0);
        // The reader takes one batch: room for two more.
        let mut seen = Vec::new();
        assert_eq!(ring.drain(1, |r| seen.extend_from_slice(r)), 2);
        assert_eq!(w.room(), 2);
        assert!(w.push(rec(20)) && w.push(rec(21)) && !w.push(rec(22)));
        let rest: Vec<u16> = ring.drain_all().iter().map(|r| r.key.src_port).collect();
        assert_eq!(rest, vec![2, 3, 20, 21]);
    }
}

//! The port trait the worker loop is written against, and an in-memory implementation.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::{Burst, PacketBuf};

/// A network port with numbered RX and TX queues, used a burst at a time (DPDK ethdev's
/// `rte_eth_rx_burst` / `rte_eth_tx_burst`).
///
/// Implemented by `clua_dpdk::Port` and by [`QueuePort`]. The methods take `&self` so several
/// workers can share one port; each (port, queue) pair is used by one thread at a time, which
/// the caller guarantees (aliasd gives every worker its own queue index).
pub trait PacketPort {
    /// The buffers this port receives into and transmits from.
    type Buf: PacketBuf;

    /// Receives up to `out.free_space()` packets from RX queue `queue`, appending them to
    /// `out`. Returns how many arrived (0 for a queue that does not exist).
    fn rx_burst(&self, queue: u16, out: &mut Burst<Self::Buf>) -> usize;

    /// Sends packets from the front of `b` on TX queue `queue`. Returns how many the port took;
    /// those leave `b`, and the ones it did not take (a full TX ring) stay in `b`, in order, at
    /// the front. The caller decides what to do with them: aliasd's worker frees and counts
    /// them as `tx_full`.
    fn tx_burst(&self, queue: u16, b: &mut Burst<Self::Buf>) -> usize;
}

impl<P: PacketPort + ?Sized> PacketPort for &P {
    type Buf = P::Buf;
    fn rx_burst(&self, queue: u16, out: &mut Burst<Self::Buf>) -> usize {
        (**self).rx_burst(queue, out)
    }
    fn tx_burst(&self, queue: u16, b: &mut Burst<Self::Buf>) -> usize {
        (**self).tx_burst(queue, b)
    }
}

impl<P: PacketPort + ?Sized> PacketPort for Arc<P> {
    type Buf = P::Buf;
    fn rx_burst(&self, queue: u16, out: &mut Burst<Self::Buf>) -> usize {
        (**self).rx_burst(queue, out)
    }
    fn tx_burst(&self, queue: u16, b: &mut Burst<Self::Buf>) -> usize {
        (**self).tx_burst(queue, b)
    }
}

/// An in-memory port: per queue, an RX queue a test fills and a TX queue a test reads, so the
/// worker loop runs without EAL (the demikernel / rpkt test device).
///
/// Each TX queue may be given a capacity ([`QueuePort::set_tx_capacity`]): a transmit then takes
/// only what fits, like a PMD whose descriptor ring is full, and leaves the rest in the burst.
/// Share it between the worker and the test as an `Arc<QueuePort<B>>` (which is a
/// [`PacketPort`] too). Locks inside are fine here: this is a test device, not a hot path.
pub struct QueuePort<B> {
    queues: Box<[QueuePair<B>]>,
    /// Packets each TX queue may hold; `usize::MAX` for no limit.
    tx_capacity: AtomicUsize,
}

struct QueuePair<B> {
    rx: Mutex<VecDeque<B>>,
    tx: Mutex<VecDeque<B>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave a VecDeque half-updated in a way that matters
    // to a test device, so a poisoned lock is used as is.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<B> QueuePort<B> {
    /// A port with `queues` RX and `queues` TX queues, all empty, TX unlimited.
    pub fn new(queues: u16) -> Self {
        QueuePort {
            queues: (0..queues)
                .map(|_| QueuePair {
                    rx: Mutex::new(VecDeque::new()),
                    tx: Mutex::new(VecDeque::new()),
                })
                .collect(),
            tx_capacity: AtomicUsize::new(usize::MAX),
        }
    }

    /// Number of queues (RX and TX each).
    pub fn queues(&self) -> u16 {
        self.queues.len() as u16
    }

    /// Limits every TX queue to `capacity` packets (`None`: no limit). A transmit takes only
    /// what fits; [`QueuePort::take_tx`] makes room again.
    pub fn set_tx_capacity(&self, capacity: Option<usize>) {
        self.tx_capacity
            .store(capacity.unwrap_or(usize::MAX), Ordering::Relaxed);
    }

    /// Queues `buf` for reception on RX queue `queue`, or hands it back when there is no such
    /// queue.
    pub fn push_rx(&self, queue: u16, buf: B) -> Result<(), B> {
        match self.queues.get(usize::from(queue)) {
            Some(q) => {
                lock(&q.rx).push_back(buf);
                Ok(())
            }
            None => Err(buf),
        }
    }

    /// Packets waiting on RX queue `queue` (0 for no such queue).
    pub fn rx_len(&self, queue: u16) -> usize {
        self.queues
            .get(usize::from(queue))
            .map_or(0, |q| lock(&q.rx).len())
    }

    /// Packets transmitted on TX queue `queue` and not yet taken (0 for no such queue).
    pub fn tx_len(&self, queue: u16) -> usize {
        self.queues
            .get(usize::from(queue))
            .map_or(0, |q| lock(&q.tx).len())
    }

    /// Takes every packet transmitted on TX queue `queue`, in order.
    pub fn take_tx(&self, queue: u16) -> Vec<B> {
        self.queues
            .get(usize::from(queue))
            .map_or_else(Vec::new, |q| lock(&q.tx).drain(..).collect())
    }
}

impl<B: PacketBuf> PacketPort for QueuePort<B> {
    type Buf = B;

    fn rx_burst(&self, queue: u16, out: &mut Burst<B>) -> usize {
        let Some(q) = self.queues.get(usize::from(queue)) else {
            return 0;
        };
        let mut rx = lock(&q.rx);
        let n = out.free_space().min(rx.len());
        out.extend(rx.drain(..n));
        n
    }

    fn tx_burst(&self, queue: u16, b: &mut Burst<B>) -> usize {
        let Some(q) = self.queues.get(usize::from(queue)) else {
            return 0;
        };
        let mut tx = lock(&q.tx);
        let room = self
            .tx_capacity
            .load(Ordering::Relaxed)
            .saturating_sub(tx.len());
        let n = room.min(b.len());
        tx.extend(b.remove_front(n));
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{VecBuf, BURST};

    fn frame(i: u8) -> VecBuf {
        VecBuf::new(&[i; 4])
    }

    #[test]
    fn rx_fills_at_most_the_free_space_in_order() {
        let port = QueuePort::new(2);
        for i in 0..40 {
            port.push_rx(1, frame(i)).unwrap();
        }
        assert!(port.push_rx(2, frame(0)).is_err(), "queue 2 does not exist");
        let mut b = Burst::new();
        assert_eq!(port.rx_burst(0, &mut b), 0, "queue 0 is empty");
        b.push(frame(200)).unwrap();
        assert_eq!(port.rx_burst(1, &mut b), BURST - 1);
        assert_eq!(port.rx_burst(1, &mut b), 0, "a full burst takes nothing");
        assert_eq!(b.as_slice()[1].data(), &[0; 4]);
        assert_eq!(b.as_slice()[BURST - 1].data(), &[30; 4]);
        assert_eq!(port.rx_len(1), 40 - (BURST - 1));
        assert_eq!(port.rx_burst(9, &mut Burst::new()), 0);
    }

    #[test]
    fn tx_takes_what_fits_and_leaves_the_rest_at_the_front() {
        let port = QueuePort::new(1);
        port.set_tx_capacity(Some(5));
        let mut b = Burst::new();
        b.extend((0..8).map(frame));
        assert_eq!(port.tx_burst(0, &mut b), 5);
        assert_eq!(b.len(), 3);
        assert_eq!(
            b.as_slice()[0].data(),
            &[5; 4],
            "unsent ones moved to the front"
        );
        assert_eq!(port.tx_burst(0, &mut b), 0, "the TX queue is full");
        let sent = port.take_tx(0);
        assert_eq!(sent.len(), 5);
        assert_eq!(sent[4].data(), &[4; 4]);
        assert_eq!(port.tx_burst(0, &mut b), 3, "taking made room");
        port.set_tx_capacity(None);
        b.extend((0..BURST as u8).map(frame));
        assert_eq!(port.tx_burst(0, &mut b), BURST);
        assert_eq!(port.tx_len(0), BURST + 3);
        assert_eq!(port.tx_burst(1, &mut b), 0, "no queue 1");
    }

    #[test]
    fn shared_through_arc_and_references() {
        fn rx<P: PacketPort>(p: P) -> usize {
            p.rx_burst(0, &mut Burst::new())
        }
        let port = Arc::new(QueuePort::new(1));
        port.push_rx(0, frame(1)).unwrap();
        port.push_rx(0, frame(2)).unwrap();
        assert_eq!(rx(&*port), 2);
        port.push_rx(0, frame(3)).unwrap();
        assert_eq!(rx(port.clone()), 1);
        assert_eq!(rx(port), 0);
    }
}

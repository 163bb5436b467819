//! A fixed-capacity burst of owned packet buffers: what ports fill and drain.

use core::fmt;

use crate::BURST;

/// Up to [`BURST`] owned buffers, in order: what [`crate::PacketPort::rx_burst`] fills and
/// [`crate::PacketPort::tx_burst`] sends from. Dropping it (or [`Burst::clear`]) drops, i.e.
/// frees, the buffers it holds.
///
/// The storage is allocated once, by [`Burst::new`], with room for [`BURST`] buffers; nothing
/// after that allocates, so a worker makes its bursts at start-up and reuses them.
///
/// One shape for every buffer type: `Burst<VecBuf>` in tests and `Burst<Mbuf>` over DPDK. The
/// storage is a `Vec` (not an inline array of `MaybeUninit`) so that this crate needs no
/// `unsafe`: the buffers are always an initialised slice the pipeline can take as `&mut [B]`,
/// and a port over FFI (clua-dpdk) fills the spare capacity and sets the length itself, through
/// [`Burst::as_mut_vec`].
pub struct Burst<B> {
    /// `len() <= BURST <= capacity()`, kept by every method of this type.
    bufs: Vec<B>,
}

/// Iterator of [`Burst::drain`]: yields the burst's buffers in order; the ones it does not
/// yield are dropped with it.
pub type Drain<'a, B> = std::vec::Drain<'a, B>;

impl<B> Default for Burst<B> {
    fn default() -> Self {
        Burst::new()
    }
}

impl<B> Burst<B> {
    /// Maximum number of buffers in a burst.
    pub const CAPACITY: usize = BURST;

    /// An empty burst with room for [`BURST`] buffers (the one allocation it makes).
    pub fn new() -> Burst<B> {
        Burst {
            bufs: Vec::with_capacity(BURST),
        }
    }

    /// Number of buffers held.
    pub fn len(&self) -> usize {
        self.bufs.len()
    }

    /// Whether the burst holds no buffer.
    pub fn is_empty(&self) -> bool {
        self.bufs.is_empty()
    }

    /// Whether the burst holds [`BURST`] buffers.
    pub fn is_full(&self) -> bool {
        self.bufs.len() >= BURST
    }

    /// Room left: how many buffers a push or an rx burst can still add.
    pub fn free_space(&self) -> usize {
        BURST.saturating_sub(self.bufs.len())
    }

    /// The buffers held, in order.
    pub fn as_slice(&self) -> &[B] {
        &self.bufs
    }

    /// The buffers held, in order, writable: what the pipeline processes.
    pub fn as_mut_slice(&mut self) -> &mut [B] {
        &mut self.bufs
    }

    /// Appends `b`, or hands it back when the burst is full.
    pub fn push(&mut self, b: B) -> Result<(), B> {
        if self.is_full() {
            return Err(b);
        }
        self.bufs.push(b);
        Ok(())
    }

    /// Removes and returns the last buffer.
    pub fn pop(&mut self) -> Option<B> {
        self.bufs.pop()
    }

    /// Removes the buffer at `i`, replacing it with the last one (order is not kept).
    ///
    /// # Panics
    /// If `i >= len()`.
    pub fn swap_remove(&mut self, i: usize) -> B {
        self.bufs.swap_remove(i)
    }

    /// Drops every buffer held.
    pub fn clear(&mut self) {
        self.bufs.clear();
    }

    /// Takes every buffer out, in order, leaving the burst empty. Does not allocate.
    pub fn drain(&mut self) -> Drain<'_, B> {
        self.bufs.drain(..)
    }

    /// Removes the first `n` buffers (all of them if there are fewer) and keeps the rest, in
    /// order, at the front: what a port does with the buffers a transmit took.
    pub fn remove_front(&mut self, n: usize) -> Drain<'_, B> {
        let n = n.min(self.bufs.len());
        self.bufs.drain(..n)
    }

    /// The storage, for port implementations that fill or empty a burst through FFI: its
    /// capacity is at least [`BURST`], and whoever changes it keeps its length at most
    /// [`BURST`] (rx into `spare_capacity_mut()[..free_space()]`, then `set_len`).
    pub fn as_mut_vec(&mut self) -> &mut Vec<B> {
        &mut self.bufs
    }
}

impl<B: fmt::Debug> fmt::Debug for Burst<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.bufs.iter()).finish()
    }
}

impl<B> Extend<B> for Burst<B> {
    /// Pushes buffers until the burst is full; the ones that do not fit are dropped.
    fn extend<I: IntoIterator<Item = B>>(&mut self, iter: I) {
        for b in iter {
            if self.push(b).is_err() {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    #[test]
    fn holds_at_most_burst_and_keeps_order() {
        let mut b = Burst::new();
        assert!(b.is_empty());
        assert_eq!(b.free_space(), BURST);
        for i in 0..BURST {
            b.push(i).unwrap();
        }
        assert!(b.is_full());
        assert_eq!(b.free_space(), 0);
        assert_eq!(b.push(99), Err(99));
        assert_eq!(b.swap_remove(0), 0);
        assert_eq!(b.as_slice()[0], BURST - 1);
        assert_eq!(b.pop(), Some(BURST - 2));
        let front: Vec<usize> = b.remove_front(2).collect();
        assert_eq!(front, vec![BURST - 1, 1]);
        assert_eq!(b.as_slice()[0], 2);
        assert_eq!(b.drain().count(), BURST - 4);
        assert!(b.is_empty());
        assert_eq!(b.remove_front(5).count(), 0);
    }

    #[test]
    fn dropping_frees_what_is_held() {
        let token = Rc::new(());
        let mut b = Burst::new();
        b.extend((0..BURST + 5).map(|_| token.clone()));
        assert_eq!(b.len(), BURST, "extend stops at BURST and drops the rest");
        assert_eq!(Rc::strong_count(&token), BURST + 1);
        let mut d = b.drain();
        drop(d.next());
        drop(d);
        assert_eq!(
            Rc::strong_count(&token),
            1,
            "an unfinished drain drops the rest"
        );
        b.push(token.clone()).unwrap();
        drop(b);
        assert_eq!(Rc::strong_count(&token), 1);
    }

    #[test]
    fn never_reallocates() {
        let mut b = Burst::new();
        let before = b.as_mut_vec().as_ptr();
        assert!(b.as_mut_vec().capacity() >= BURST);
        for _ in 0..3 {
            b.extend(0..BURST as u32 * 2);
            b.clear();
        }
        assert_eq!(b.as_mut_vec().as_ptr(), before);
    }
}

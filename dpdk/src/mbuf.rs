//! Owned mbufs and fixed-size bursts of them.

use std::fmt;
use std::mem::{ManuallyDrop, MaybeUninit};
use std::ptr::NonNull;

use clua_dpdk_sys as sys;
use clua_pipeline::{PacketBuf, BURST};

use crate::Mempool;

/// One owned, single-segment packet buffer (`struct rte_mbuf *`). Dropping it returns it to its
/// pool (`rte_pktmbuf_free`).
///
/// `#[repr(transparent)]` over `NonNull<rte_mbuf>`, so an array of `Mbuf` has the layout of the
/// `struct rte_mbuf *[]` that the burst calls take.
///
/// Only the first segment is visible: [`PacketBuf::data`] returns it. The pools clua creates
/// have a data room larger than any frame the ports accept, so multi-segment mbufs do not occur.
#[repr(transparent)]
pub struct Mbuf(NonNull<sys::rte_mbuf>);

// SAFETY: an Mbuf is the unique owner of its rte_mbuf; nothing else references it, and freeing
// it from any thread is allowed (mempool put is thread-safe).
unsafe impl Send for Mbuf {}
// SAFETY: through `&Mbuf` only reads of the mbuf happen (and prefetch), no interior mutability.
unsafe impl Sync for Mbuf {}

impl Mbuf {
    /// Takes an mbuf from `pool` (`rte_pktmbuf_alloc`): empty, with the pool's default headroom.
    /// `None` when the pool is exhausted.
    pub fn alloc(pool: &Mempool) -> Option<Mbuf> {
        // SAFETY: pool is a live mbuf pool (a Mempool is only made by rte_pktmbuf_pool_create).
        let raw = unsafe { sys::clua_pktmbuf_alloc(pool.as_ptr()) };
        NonNull::new(raw).map(Mbuf)
    }

    /// An mbuf from `pool` holding a copy of `bytes`. `None` when the pool is exhausted or
    /// `bytes` does not fit behind the headroom.
    pub fn from_bytes(pool: &Mempool, bytes: &[u8]) -> Option<Mbuf> {
        let len = u16::try_from(bytes.len()).ok()?;
        let m = Mbuf::alloc(pool)?;
        // SAFETY: m is a live, exclusively owned mbuf.
        let dst = unsafe { sys::clua_pktmbuf_append(m.0.as_ptr(), len) };
        if dst.is_null() {
            return None; // `m` is freed on return
        }
        // SAFETY: append returned a pointer to `len` writable bytes inside m's buffer, which
        // cannot overlap `bytes` (a shared borrow of other memory).
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), dst.cast::<u8>(), bytes.len()) };
        Some(m)
    }

    /// Length of the packet data (the first segment's `data_len`).
    pub fn len(&self) -> usize {
        // SAFETY: self.0 is a live mbuf we own.
        usize::from(unsafe { sys::clua_pktmbuf_data_len(self.0.as_ptr()) })
    }

    /// Whether the packet is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes free in front of the data, usable by [`PacketBuf::prepend`].
    pub fn headroom(&self) -> usize {
        // SAFETY: self.0 is a live mbuf we own.
        usize::from(unsafe { sys::clua_pktmbuf_headroom(self.0.as_ptr()) })
    }

    /// Bytes free behind the data.
    pub fn tailroom(&self) -> usize {
        // SAFETY: self.0 is a live mbuf we own.
        usize::from(unsafe { sys::clua_pktmbuf_tailroom(self.0.as_ptr()) })
    }

    /// Number of segments (always 1 for the mbufs clua handles).
    pub fn segments(&self) -> u16 {
        // SAFETY: self.0 is a live mbuf we own.
        unsafe { sys::clua_pktmbuf_nb_segs(self.0.as_ptr()) }
    }

    /// Sets the RSS hash and its flag, as a NIC would (for tests and software RSS).
    pub fn set_rss_hash(&mut self, hash: u32) {
        // SAFETY: self.0 is a live mbuf we own exclusively (`&mut self`).
        unsafe { sys::clua_pktmbuf_set_rss_hash(self.0.as_ptr(), hash) }
    }

    /// Gives up ownership: the caller must eventually free the pointer or rebuild an `Mbuf`.
    pub fn into_raw(self) -> NonNull<sys::rte_mbuf> {
        ManuallyDrop::new(self).0
    }

    /// The raw pointer, still owned by `self`.
    pub fn as_ptr(&self) -> *mut sys::rte_mbuf {
        self.0.as_ptr()
    }

    /// Takes ownership of a raw mbuf.
    ///
    /// # Safety
    /// `raw` must be a live mbuf from a pktmbuf pool that nothing else owns or references, and
    /// whose pool outlives the returned `Mbuf`.
    pub unsafe fn from_raw(raw: NonNull<sys::rte_mbuf>) -> Mbuf {
        Mbuf(raw)
    }
}

impl Drop for Mbuf {
    fn drop(&mut self) {
        // SAFETY: we own the mbuf exclusively and never use it again.
        unsafe { sys::clua_pktmbuf_free(self.0.as_ptr()) }
    }
}

impl fmt::Debug for Mbuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mbuf")
            .field("ptr", &self.0)
            .field("len", &self.len())
            .field("headroom", &self.headroom())
            .finish()
    }
}

impl PacketBuf for Mbuf {
    fn data(&self) -> &[u8] {
        // SAFETY: mtod points at data_len initialised bytes of the first segment, inside the
        // mbuf's buffer, which lives as long as we own the mbuf; `&self` prevents mutation for
        // the returned lifetime.
        unsafe {
            let m = self.0.as_ptr();
            std::slice::from_raw_parts(
                sys::clua_pktmbuf_mtod(m).cast::<u8>(),
                usize::from(sys::clua_pktmbuf_data_len(m)),
            )
        }
    }

    fn data_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `data`; `&mut self` makes the slice the only access to those bytes.
        unsafe {
            let m = self.0.as_ptr();
            std::slice::from_raw_parts_mut(
                sys::clua_pktmbuf_mtod(m).cast::<u8>(),
                usize::from(sys::clua_pktmbuf_data_len(m)),
            )
        }
    }

    fn prepend(&mut self, n: usize) -> bool {
        let Ok(n) = u16::try_from(n) else {
            return false;
        };
        // SAFETY: we own the mbuf exclusively; prepend checks the headroom and changes nothing
        // when it is too small (returning NULL).
        !unsafe { sys::clua_pktmbuf_prepend(self.0.as_ptr(), n) }.is_null()
    }

    fn adj(&mut self, n: usize) -> bool {
        let Ok(n) = u16::try_from(n) else {
            return false;
        };
        // SAFETY: we own the mbuf exclusively; adj checks data_len and changes nothing when
        // the packet is shorter (returning NULL).
        !unsafe { sys::clua_pktmbuf_adj(self.0.as_ptr(), n) }.is_null()
    }

    fn trim(&mut self, n: usize) -> bool {
        let Ok(n) = u16::try_from(n) else {
            return false;
        };
        // SAFETY: we own the mbuf exclusively; trim checks the last segment's data_len and
        // changes nothing when it is shorter (returning -1).
        unsafe { sys::clua_pktmbuf_trim(self.0.as_ptr(), n) == 0 }
    }

    fn rss_hash(&self) -> Option<u32> {
        let mut hash = 0u32;
        // SAFETY: the mbuf is live; the shim reads ol_flags and hash.rss and writes `hash`,
        // a valid local.
        let set = unsafe { sys::clua_pktmbuf_rss_hash(self.0.as_ptr(), &mut hash) };
        (set != 0).then_some(hash)
    }

    fn prefetch(&self) {
        // SAFETY: a prefetch hint never faults, and mtod is a pointer into the live buffer.
        unsafe { sys::clua_prefetch0(sys::clua_pktmbuf_mtod(self.0.as_ptr())) }
    }
}

/// Up to [`BURST`] owned mbufs in a fixed array: what the burst calls fill and drain.
/// Never allocates. Dropping it (or [`Burst::clear`]) frees the mbufs it holds.
pub struct Burst {
    /// `bufs[..len]` are initialised and owned; the rest are not.
    bufs: [MaybeUninit<Mbuf>; BURST],
    len: usize,
}

impl Default for Burst {
    fn default() -> Self {
        Burst::new()
    }
}

impl Burst {
    /// Maximum number of mbufs in a burst.
    pub const CAPACITY: usize = BURST;

    /// An empty burst.
    pub const fn new() -> Burst {
        Burst {
            bufs: [const { MaybeUninit::uninit() }; BURST],
            len: 0,
        }
    }

    /// Number of mbufs held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the burst holds no mbuf.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether the burst holds [`BURST`] mbufs.
    pub fn is_full(&self) -> bool {
        self.len == BURST
    }

    /// Room left: how many mbufs a push or an rx burst can still add.
    pub fn free_space(&self) -> usize {
        BURST - self.len
    }

    /// The mbufs held, in order.
    pub fn as_slice(&self) -> &[Mbuf] {
        // SAFETY: bufs[..len] are initialised, and MaybeUninit<Mbuf> has Mbuf's layout.
        unsafe { std::slice::from_raw_parts(self.bufs.as_ptr().cast::<Mbuf>(), self.len) }
    }

    /// The mbufs held, in order, writable.
    pub fn as_mut_slice(&mut self) -> &mut [Mbuf] {
        // SAFETY: bufs[..len] are initialised, and MaybeUninit<Mbuf> has Mbuf's layout.
        unsafe { std::slice::from_raw_parts_mut(self.bufs.as_mut_ptr().cast::<Mbuf>(), self.len) }
    }

    /// Appends `m`, or hands it back when the burst is full.
    pub fn push(&mut self, m: Mbuf) -> Result<(), Mbuf> {
        if self.len == BURST {
            return Err(m);
        }
        self.bufs[self.len].write(m);
        self.len += 1;
        Ok(())
    }

    /// Removes and returns the last mbuf.
    pub fn pop(&mut self) -> Option<Mbuf> {
        if self.len == 0 {
            return None;
        }
        self.len -= 1;
        // SAFETY: bufs[len] was initialised; decrementing len first makes us its only owner.
        Some(unsafe { self.bufs[self.len].assume_init_read() })
    }

    /// Removes the mbuf at `i`, replacing it with the last one (order is not kept).
    ///
    /// # Panics
    /// If `i >= len()`.
    pub fn swap_remove(&mut self, i: usize) -> Mbuf {
        assert!(
            i < self.len,
            "Burst::swap_remove index {i} out of {}",
            self.len
        );
        self.len -= 1;
        let last = self.len;
        // SAFETY: bufs[i] and bufs[last] are initialised; after the swap bufs[last] (now the
        // element at i) is past len, so reading it out transfers its ownership to us.
        unsafe {
            self.bufs.swap(i, last);
            self.bufs[last].assume_init_read()
        }
    }

    /// Frees every mbuf held.
    pub fn clear(&mut self) {
        let len = self.len;
        self.len = 0;
        // SAFETY: bufs[..len] were initialised and are now past len, so dropping them here is
        // their only drop (len is reset first, so a panic in a drop leaks rather than double
        // frees).
        unsafe {
            std::ptr::drop_in_place(std::ptr::slice_from_raw_parts_mut(
                self.bufs.as_mut_ptr().cast::<Mbuf>(),
                len,
            ));
        }
    }

    /// Takes every mbuf out, in order, leaving the burst empty. Mbufs the iterator does not
    /// yield are freed when it is dropped. Does not allocate.
    pub fn drain(&mut self) -> Drain<'_> {
        let end = self.len;
        self.len = 0;
        Drain {
            burst: self,
            next: 0,
            end,
        }
    }

    /// Pointer to the first slot, as the `struct rte_mbuf **` of the burst calls.
    pub(crate) fn raw_ptr(&mut self) -> *mut *mut sys::rte_mbuf {
        // Mbuf is repr(transparent) over NonNull<rte_mbuf>, which has the layout of
        // *mut rte_mbuf; MaybeUninit<T> has T's layout.
        self.bufs.as_mut_ptr().cast::<*mut sys::rte_mbuf>()
    }

    /// Pointer to the first free slot.
    pub(crate) fn spare_ptr(&mut self) -> *mut *mut sys::rte_mbuf {
        // SAFETY: len <= BURST, so the offset stays inside (or one past) the array.
        unsafe { self.raw_ptr().add(self.len) }
    }

    /// Records that `n` more slots after `len` were filled with owned, non-null mbufs.
    ///
    /// # Safety
    /// `bufs[len..len + n]` must hold valid mbufs that nothing else owns, and
    /// `len + n <= BURST`.
    pub(crate) unsafe fn set_filled(&mut self, n: usize) {
        debug_assert!(self.len + n <= BURST);
        self.len += n;
    }

    /// Forgets the first `n` mbufs (ownership went elsewhere, e.g. to a NIC or a ring) and
    /// moves the rest to the front.
    ///
    /// # Safety
    /// The caller must have transferred ownership of `bufs[..n]`, and `n <= len`.
    pub(crate) unsafe fn forget_front(&mut self, n: usize) {
        debug_assert!(n <= self.len);
        let rest = self.len - n;
        if n > 0 && rest > 0 {
            let p = self.bufs.as_mut_ptr();
            // SAFETY: both ranges are inside the array; copy handles overlap.
            std::ptr::copy(p.add(n), p, rest);
        }
        self.len = rest;
    }
}

impl Drop for Burst {
    fn drop(&mut self) {
        self.clear();
    }
}

impl fmt::Debug for Burst {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

impl Extend<Mbuf> for Burst {
    /// Pushes mbufs until the burst is full; the ones that do not fit are freed.
    fn extend<I: IntoIterator<Item = Mbuf>>(&mut self, iter: I) {
        for m in iter {
            if self.push(m).is_err() {
                break;
            }
        }
    }
}

/// Iterator of [`Burst::drain`]: yields the burst's mbufs in order.
pub struct Drain<'a> {
    burst: &'a mut Burst,
    next: usize,
    end: usize,
}

impl Iterator for Drain<'_> {
    type Item = Mbuf;

    fn next(&mut self) -> Option<Mbuf> {
        if self.next == self.end {
            return None;
        }
        let i = self.next;
        self.next += 1;
        // SAFETY: bufs[next..end] are initialised and owned by the drain (the burst's len is
        // 0); each is read out exactly once as `next` advances.
        Some(unsafe { self.burst.bufs[i].assume_init_read() })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.end - self.next;
        (n, Some(n))
    }
}

impl ExactSizeIterator for Drain<'_> {}

impl Drop for Drain<'_> {
    fn drop(&mut self) {
        for m in self.by_ref() {
            drop(m);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_burst() {
        let mut b = Burst::new();
        assert!(b.is_empty());
        assert_eq!(b.free_space(), BURST);
        assert!(b.pop().is_none());
        assert_eq!(b.drain().count(), 0);
        b.clear();
        assert_eq!(b.as_slice().len(), 0);
    }

    #[test]
    fn layouts_match_the_c_arrays() {
        use std::mem::{align_of, size_of};
        assert_eq!(size_of::<Mbuf>(), size_of::<*mut sys::rte_mbuf>());
        assert_eq!(align_of::<Mbuf>(), align_of::<*mut sys::rte_mbuf>());
        assert_eq!(size_of::<Option<Mbuf>>(), size_of::<*mut sys::rte_mbuf>());
        assert_eq!(
            size_of::<[MaybeUninit<Mbuf>; BURST]>(),
            BURST * size_of::<usize>()
        );
    }
}

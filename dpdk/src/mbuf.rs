//! Owned mbufs, and the FFI side of filling and emptying bursts of them.

use std::fmt;
use std::mem::ManuallyDrop;
use std::ptr::NonNull;

use clua_dpdk_sys as sys;
use clua_packet::PacketBuf;

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
        unsafe { view(self.0.as_ptr()) }.1
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

/// The first segment's data start (`rte_pktmbuf_mtod`: `buf_addr + data_off`) and `data_len`,
/// read inline at the offsets of the installed DPDK's `struct rte_mbuf` (`wrapper.h`,
/// `clua_mbuf_layout`) instead of by two calls into the shim per access.
///
/// # Safety
/// `m` must point at a live mbuf.
#[inline(always)]
unsafe fn view(m: *const sys::rte_mbuf) -> (*mut u8, usize) {
    let base = m.cast::<u8>();
    // SAFETY: the offsets are those of the fields in the struct `m` points at (computed by
    // clang from DPDK's header, with their sizes asserted there); `struct rte_mbuf` is
    // cache-line aligned and the fields naturally aligned, but read_unaligned needs neither.
    unsafe {
        let buf = base
            .add(sys::CLUA_MBUF_BUF_ADDR as usize)
            .cast::<*mut u8>()
            .read_unaligned();
        let off = base
            .add(sys::CLUA_MBUF_DATA_OFF as usize)
            .cast::<u16>()
            .read_unaligned();
        let len = base
            .add(sys::CLUA_MBUF_DATA_LEN as usize)
            .cast::<u16>()
            .read_unaligned();
        (buf.add(usize::from(off)), usize::from(len))
    }
}

impl PacketBuf for Mbuf {
    #[inline(always)]
    fn data(&self) -> &[u8] {
        // SAFETY: the mbuf is live and ours; `view` gives the first segment's data start and
        // data_len, initialised bytes inside the mbuf's buffer, which lives as long as we own
        // the mbuf; `&self` prevents mutation for the returned lifetime.
        unsafe {
            let (p, n) = view(self.0.as_ptr());
            std::slice::from_raw_parts(p, n)
        }
    }

    #[inline(always)]
    fn data_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `data`; `&mut self` makes the slice the only access to those bytes.
        unsafe {
            let (p, n) = view(self.0.as_ptr());
            std::slice::from_raw_parts_mut(p, n)
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

    #[inline(always)]
    fn prefetch(&self) {
        // SAFETY: the mbuf is live; `view` only reads its header. The data pointer is into its
        // buffer, and a prefetch of it is a hint that never faults.
        // (Inline `prefetcht0`, like rte_prefetch0, rather than the shim's call.)
        unsafe {
            let (p, _) = view(self.0.as_ptr());
            #[cfg(target_arch = "x86_64")]
            core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p.cast());
            #[cfg(not(target_arch = "x86_64"))]
            sys::clua_prefetch0(p.cast());
        }
    }
}

/// A read-only mbuf that can be transmitted many times without a copy: each transmission
/// hands the driver one more reference (`rte_mbuf_refcnt_update`), and the driver's free after
/// sending only takes that reference back. For traffic generators (`clua-bench memif-gen`),
/// which send the same prepared frames over and over. Dropping it frees the last reference.
///
/// No `data_mut`: once shared, a frame's bytes may be read by a driver at any time, so nothing
/// may write them (DPDK's rule for mbufs whose reference count is above one).
#[repr(transparent)]
pub struct SharedMbuf(NonNull<sys::rte_mbuf>);

// SAFETY: the reference count is atomic (RTE_MBUF_REFCNT_ATOMIC, DPDK's default), the bytes
// are never written after construction, and freeing from any thread is allowed.
unsafe impl Send for SharedMbuf {}
// SAFETY: `&SharedMbuf` only reads the frame and adds references atomically.
unsafe impl Sync for SharedMbuf {}

impl SharedMbuf {
    /// The frame's bytes.
    pub fn data(&self) -> &[u8] {
        // SAFETY: `view` gives data_len initialised bytes of the first segment inside the
        // buffer, which lives while we hold our reference; nobody writes a shared mbuf.
        unsafe {
            let (p, n) = view(self.0.as_ptr());
            std::slice::from_raw_parts(p, n)
        }
    }

    /// The current reference count (1 when no driver holds it).
    pub fn refcnt(&self) -> u16 {
        // SAFETY: a live mbuf; an atomic read.
        unsafe { sys::clua_mbuf_refcnt_read(self.0.as_ptr()) }
    }

    /// Adds one reference and returns the raw pointer that carries it, for a burst call that
    /// takes ownership of one reference per pointer. [`SharedMbuf::put_back`] returns it.
    pub(crate) fn lend(&self) -> *mut sys::rte_mbuf {
        // SAFETY: a live mbuf we hold a reference to; the update is atomic.
        unsafe { sys::clua_mbuf_refcnt_update(self.0.as_ptr(), 1) };
        self.0.as_ptr()
    }

    /// Gives back a reference taken by [`SharedMbuf::lend`] that no driver took.
    ///
    /// # Safety
    /// `raw` must come from `lend` on a live `SharedMbuf` and not have been handed over.
    pub(crate) unsafe fn put_back(raw: *mut sys::rte_mbuf) {
        // SAFETY: the caller's contract: we own that one extra reference; the count stays
        // >= 1 because the SharedMbuf still holds its own.
        unsafe { sys::clua_pktmbuf_free(raw) }
    }
}

impl From<Mbuf> for SharedMbuf {
    fn from(m: Mbuf) -> Self {
        SharedMbuf(m.into_raw())
    }
}

impl Drop for SharedMbuf {
    fn drop(&mut self) {
        // SAFETY: we hold one reference and never use it again; rte_pktmbuf_free drops that
        // reference and returns the mbuf to its pool only when it was the last.
        unsafe { sys::clua_pktmbuf_free(self.0.as_ptr()) }
    }
}

/// Up to [`BURST`](clua_packet::BURST) owned mbufs: what the burst calls fill and drain. It is
/// the leaf crate's [`clua_packet::Burst`], so the worker loop and the pipeline see one burst
/// type for mbufs and heap buffers alike; the FFI side of filling and emptying it is
/// `fill_burst` and `send_burst` in this module.
pub type Burst = clua_packet::Burst<Mbuf>;

/// Iterator of [`Burst::drain`].
pub type Drain<'a> = clua_packet::Drain<'a, Mbuf>;

/// Lets a DPDK call that writes mbuf pointers (`rte_eth_rx_burst`, `rte_ring_dequeue_burst`)
/// append to `b`: `fill(slots, room)` may write up to `room` owned mbuf pointers to `slots`
/// and returns how many it wrote. Returns that number (capped at `room`).
///
/// # Safety
/// `fill` must write exactly the first `n` slots it reports (capped at `room`), each an owned,
/// non-null mbuf from a pool that outlives the burst, whose ownership it hands over.
pub(crate) unsafe fn fill_burst(
    b: &mut Burst,
    fill: impl FnOnce(*mut *mut sys::rte_mbuf, usize) -> usize,
) -> usize {
    let room = b.free_space();
    if room == 0 {
        return 0;
    }
    let v = b.as_mut_vec();
    let len = v.len();
    let spare = v.spare_capacity_mut();
    // Burst keeps capacity >= BURST >= len + room; the min keeps this sound regardless.
    let room = room.min(spare.len());
    // Mbuf is repr(transparent) over NonNull<rte_mbuf> and MaybeUninit<Mbuf> has Mbuf's
    // layout, so each spare slot has the layout of the `struct rte_mbuf *` DPDK writes.
    let slots = spare.as_mut_ptr().cast::<*mut sys::rte_mbuf>();
    let n = fill(slots, room).min(room);
    // SAFETY: the caller's contract: slots len..len + n now hold owned, non-null mbufs, and
    // len + n <= capacity.
    unsafe { v.set_len(len + n) };
    n
}

/// Lets a DPDK call that takes mbuf pointers (`rte_eth_tx_burst`, `rte_ring_enqueue_burst`)
/// send from the front of `b`: `send(slots, len)` reads the first `len` pointers, takes
/// ownership of the first `n` and returns `n`. Those leave `b` without being freed; the rest
/// stay, in order, at the front. Returns `n` (capped at `len`).
///
/// # Safety
/// `send` must take ownership of exactly the first `n` mbufs it reports and leave the others
/// untouched.
pub(crate) unsafe fn send_burst(
    b: &mut Burst,
    send: impl FnOnce(*mut *mut sys::rte_mbuf, usize) -> usize,
) -> usize {
    let len = b.len();
    if len == 0 {
        return 0;
    }
    // Mbuf is repr(transparent) over NonNull<rte_mbuf>: the first `len` elements are laid out
    // as the `struct rte_mbuf *[]` DPDK reads.
    let slots = b.as_mut_vec().as_mut_ptr().cast::<*mut sys::rte_mbuf>();
    let n = send(slots, len).min(len);
    // The first n belong to DPDK now: take them out of the burst without freeing them.
    b.remove_front(n).for_each(std::mem::forget);
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use clua_packet::BURST;

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
        use std::mem::{align_of, size_of, MaybeUninit};
        assert_eq!(size_of::<Mbuf>(), size_of::<*mut sys::rte_mbuf>());
        assert_eq!(align_of::<Mbuf>(), align_of::<*mut sys::rte_mbuf>());
        assert_eq!(size_of::<Option<Mbuf>>(), size_of::<*mut sys::rte_mbuf>());
        assert_eq!(
            size_of::<[MaybeUninit<Mbuf>; BURST]>(),
            BURST * size_of::<usize>()
        );
    }

    #[test]
    fn fill_and_send_stop_at_the_burst_bounds() {
        let mut b = Burst::new();
        let mut room_seen = 0;
        // SAFETY: writes nothing and reports nothing written.
        unsafe {
            fill_burst(&mut b, |_, room| {
                room_seen = room;
                0
            })
        };
        assert_eq!(room_seen, BURST);
        // SAFETY: an empty burst is never handed to `send`.
        assert_eq!(unsafe { send_burst(&mut b, |_, _| unreachable!()) }, 0);
    }
}

//! Lockless mbuf rings, for tests, benches and net_ring ports.

use std::ffi::CString;
use std::marker::PhantomData;
use std::ptr::NonNull;

use clua_dpdk_sys as sys;

use crate::eal::ensure_running;
use crate::mbuf::{fill_burst, send_burst};
use crate::{Burst, Error};

/// An `rte_ring` of owned mbufs. Dropping it dequeues and frees the mbufs still in it, then
/// frees the ring.
///
/// `Send` but not `Sync`: the handle is used by one thread at a time, which keeps single-producer
/// / single-consumer rings ([`Ring::SP_ENQ`], [`Ring::SC_DEQ`]) sound. A ring given to
/// [`crate::Port::from_rings`] is also used by that port's queues: close the port before
/// dropping the ring, and do not enqueue/dequeue on the side the port uses.
#[derive(Debug)]
pub struct Ring {
    raw: NonNull<sys::rte_ring>,
    _not_sync: PhantomData<std::cell::Cell<()>>,
}

// SAFETY: the ring is plain shared memory with no thread affinity; the handle owns it.
unsafe impl Send for Ring {}

impl Ring {
    /// Single-producer enqueue flag (`RING_F_SP_ENQ`).
    pub const SP_ENQ: u32 = sys::RING_F_SP_ENQ;
    /// Single-consumer dequeue flag (`RING_F_SC_DEQ`).
    pub const SC_DEQ: u32 = sys::RING_F_SC_DEQ;
    /// Exact-size flag (`RING_F_EXACT_SZ`): `count` need not be a power of two.
    pub const EXACT_SZ: u32 = sys::RING_F_EXACT_SZ;

    /// Creates a ring (`rte_ring_create`) of `count` slots (a power of two, holding
    /// `count - 1`, unless [`Ring::EXACT_SZ`]) on any socket.
    ///
    /// # Errors
    /// [`Error::NotInitialized`]; [`Error::Dpdk`] with `rte_errno` (`EINVAL` for a bad count,
    /// `EEXIST` for a taken name, `ENOMEM`).
    pub fn new(name: &str, count: u32, flags: u32) -> Result<Ring, Error> {
        ensure_running()?;
        let cname = CString::new(name).map_err(|_| Error::InvalidArgument {
            call: "rte_ring_create",
            what: "the name contains a NUL byte",
        })?;
        // SAFETY: EAL is running; cname is a valid C string (copied by DPDK).
        let raw = unsafe { sys::rte_ring_create(cname.as_ptr(), count, sys::SOCKET_ID_ANY, flags) };
        NonNull::new(raw)
            .map(|raw| Ring {
                raw,
                _not_sync: PhantomData,
            })
            .ok_or_else(|| Error::from_rte_errno("rte_ring_create"))
    }

    /// The raw ring pointer, for FFI.
    pub fn as_ptr(&self) -> *mut sys::rte_ring {
        self.raw.as_ptr()
    }

    /// Enqueues mbufs from the front of `b`; ownership of the enqueued ones moves to the ring.
    /// The ones that did not fit stay in `b`, moved to the front. Returns how many went in.
    pub fn enqueue_burst(&self, b: &mut Burst) -> usize {
        // SAFETY: the ring is live; send_burst hands over the burst's `len` owned mbuf
        // pointers (each a valid `void *`); the ring takes ownership of the first n it returns
        // and leaves the rest. `&self` on a !Sync handle means one thread.
        unsafe {
            send_burst(b, |slots, len| {
                sys::clua_ring_enqueue_burst(
                    self.raw.as_ptr(),
                    slots.cast::<*mut std::ffi::c_void>(),
                    len as u32,
                    std::ptr::null_mut(),
                ) as usize
            })
        }
    }

    /// Dequeues up to `b.free_space()` mbufs, appending them to `b`. Returns how many.
    pub fn dequeue_burst(&self, b: &mut Burst) -> usize {
        // SAFETY: the ring is live and holds only owned mbufs (only Bursts and the ring PMD
        // enqueue into it); it writes at most `room` pointers into the free slots fill_burst
        // hands over, which have the layout of `void *`, and returns how many.
        unsafe {
            fill_burst(b, |slots, room| {
                sys::clua_ring_dequeue_burst(
                    self.raw.as_ptr(),
                    slots.cast::<*mut std::ffi::c_void>(),
                    room as u32,
                    std::ptr::null_mut(),
                ) as usize
            })
        }
    }

    /// Number of entries in the ring.
    pub fn count(&self) -> u32 {
        // SAFETY: the ring is live; this reads its head and tail.
        unsafe { sys::clua_ring_count(self.raw.as_ptr()) }
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        if !crate::is_initialized() {
            return; // EAL is gone and took its memory with it
        }
        let mut b = Burst::new();
        while self.dequeue_burst(&mut b) > 0 {
            b.clear();
        }
        // SAFETY: the ring is live, owned by us, and (documented) no port uses it any more.
        unsafe { sys::rte_ring_free(self.raw.as_ptr()) }
    }
}

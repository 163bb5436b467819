//! Packet-buffer pools.

use std::ffi::CString;
use std::ptr::NonNull;

use clua_dpdk_sys as sys;

use crate::eal::ensure_running;
use crate::Error;

/// An mbuf pool (`rte_pktmbuf_pool_create`).
///
/// Dropping it calls `rte_mempool_free`, but only when every mbuf is back in the pool: if some
/// are still out (held by an [`crate::Mbuf`], a [`crate::Ring`] or a started or configured
/// port's RX descriptors) the pool is leaked instead, with a message on stderr, so a late mbuf
/// free never touches freed memory. Close every [`crate::Port`] that uses the pool and drop its
/// mbufs first (aliasd orders its drops that way), and drop the pool before [`crate::Eal`].
#[derive(Debug)]
pub struct Mempool {
    raw: NonNull<sys::rte_mempool>,
}

// SAFETY: a DPDK mempool is built for concurrent get/put from any thread (the default ring_mp_mc
// ops are multi-producer/multi-consumer; per-lcore caches are indexed by the calling lcore).
unsafe impl Send for Mempool {}
// SAFETY: as above; every method through `&Mempool` is a thread-safe DPDK call.
unsafe impl Sync for Mempool {}

impl Mempool {
    /// Creates a pool of `n` mbufs with a per-lcore cache of `cache` and `data_room` bytes of
    /// buffer each (headroom included: use [`Mempool::DEFAULT_DATA_ROOM`] for 2048 bytes of
    /// packet behind 128 of headroom), on NUMA `socket` (`-1` for any).
    ///
    /// # Errors
    /// [`Error::NotInitialized`] before EAL; [`Error::InvalidArgument`] for a name with NUL;
    /// [`Error::Dpdk`] with `rte_errno` (`EEXIST` for a taken name, `ENOMEM`, `EINVAL` for a
    /// cache larger than DPDK allows) if `rte_pktmbuf_pool_create` fails.
    pub fn new(
        name: &str,
        n: u32,
        cache: u32,
        data_room: u16,
        socket: i32,
    ) -> Result<Mempool, Error> {
        ensure_running()?;
        let cname = CString::new(name).map_err(|_| Error::InvalidArgument {
            call: "rte_pktmbuf_pool_create",
            what: "the name contains a NUL byte",
        })?;
        // SAFETY: EAL is running; cname is a valid C string for the duration of the call (DPDK
        // copies it).
        let raw =
            unsafe { sys::rte_pktmbuf_pool_create(cname.as_ptr(), n, cache, 0, data_room, socket) };
        NonNull::new(raw)
            .map(|raw| Mempool { raw })
            .ok_or_else(|| Error::from_rte_errno("rte_pktmbuf_pool_create"))
    }

    /// DPDK's default mbuf buffer size: 2048 bytes of data room plus 128 of headroom.
    pub const DEFAULT_DATA_ROOM: u16 = sys::RTE_MBUF_DEFAULT_BUF_SIZE as u16;

    /// The raw pool pointer, for FFI.
    pub fn as_ptr(&self) -> *mut sys::rte_mempool {
        self.raw.as_ptr()
    }

    /// Mbufs currently in the pool (including per-lcore caches).
    pub fn available(&self) -> u32 {
        // SAFETY: self.raw is a live pool; the call only reads counters.
        unsafe { sys::rte_mempool_avail_count(self.raw.as_ptr()) }
    }

    /// Mbufs currently taken from the pool.
    pub fn in_use(&self) -> u32 {
        // SAFETY: self.raw is a live pool; the call only reads counters.
        unsafe { sys::rte_mempool_in_use_count(self.raw.as_ptr()) }
    }
}

impl Drop for Mempool {
    fn drop(&mut self) {
        if !crate::is_initialized() {
            return; // EAL is gone and took its memory with it
        }
        let in_use = self.in_use();
        if in_use != 0 {
            eprintln!("clua-dpdk: leaking a mempool with {in_use} mbufs still in use");
            return;
        }
        // SAFETY: the pool is live, owned by us, and no mbuf of it is outstanding, so nothing
        // can reach it after this.
        unsafe { sys::rte_mempool_free(self.raw.as_ptr()) }
    }
}

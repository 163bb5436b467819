//! Hints to the CPU and the kernel for the data plane's large tables, and nothing else.
//!
//! The packet pipeline (`clua-pipeline`) is `#![forbid(unsafe_code)]`; the only two things it
//! cannot say in safe Rust live here, each behind a safe function with one `// SAFETY:` block:
//!
//! - [`prefetch_read`] / [`prefetch_write`]: start loading the cache line holding a value
//!   (x86_64 `prefetcht0`, like DPDK's `rte_prefetch0`), so that the misses of a whole burst's
//!   table look-ups overlap instead of stalling one after the other. A prefetch is a hint: it
//!   never faults, never changes memory, and is a no-op on other architectures.
//! - [`huge_boxed_slice`]: a boxed slice whose pages the kernel is asked to back with
//!   transparent huge pages (`madvise(MADV_HUGEPAGE)`, Linux; THP in `madvise` mode is the
//!   Debian default). A 1M-flow connection table is ~80 MiB: with 4 KiB pages every look-up is
//!   also a TLB miss (a page walk); with 2 MiB pages the whole table fits the second-level TLB.
#![deny(unsafe_op_in_unsafe_fn)]

/// Starts loading the cache line holding `r` into all cache levels (T0). Returns at once; a
/// hint only (no fault, no effect on memory or on the program's result).
#[inline(always)]
pub fn prefetch_read<T>(r: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `_mm_prefetch` only hints the cache hierarchy: it never faults (even on an
    // invalid address, and this one comes from a live reference), reads nothing into the
    // program and writes nothing. SSE is part of the x86_64 baseline.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(
            (r as *const T).cast::<i8>(),
        )
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = r;
}

/// [`prefetch_read`] of a line about to be written. x86_64 has no portable write hint below
/// `prefetchw` (not in the baseline), so this is the same T0 read prefetch: it brings the line
/// close, and the write then needs only the ownership upgrade.
#[inline(always)]
pub fn prefetch_write<T>(r: &mut T) {
    prefetch_read(&*r)
}

/// Slices at least this large are advised onto huge pages (a smaller one has no whole 2 MiB
/// page inside it worth asking for).
pub const HUGE_MIN_BYTES: usize = 4 << 20;

/// A boxed slice of `n` copies of `init`, allocated once. When it is at least
/// [`HUGE_MIN_BYTES`] long (Linux only), the kernel is asked to back it with transparent huge
/// pages *before* anything is written to it, so that the first writes fault in 2 MiB pages
/// (`madvise(MADV_HUGEPAGE)`; ignored when THP is `never` or no huge page is free, and then the
/// slice is simply made of small pages). The slice is an ordinary `Box<[T]>` and is freed as one.
pub fn huge_boxed_slice<T: Copy>(n: usize, init: T) -> Box<[T]> {
    let mut b = Box::<[T]>::new_uninit_slice(n);
    let bytes = core::mem::size_of_val(&*b);
    if bytes >= HUGE_MIN_BYTES {
        advise_huge(b.as_mut_ptr() as usize, bytes);
    }
    for x in b.iter_mut() {
        x.write(init);
    }
    // SAFETY: every element was written just above, so the whole slice is initialised.
    unsafe { b.assume_init() }
}

/// Asks for huge pages on the 2 MiB-aligned part of `[addr, addr + len)` (a range this crate
/// just allocated and owns).
#[cfg(target_os = "linux")]
fn advise_huge(addr: usize, len: usize) {
    const HUGE: usize = 2 << 20;
    let start = addr.next_multiple_of(HUGE);
    let end = (addr + len) & !(HUGE - 1);
    if end > start {
        // SAFETY: madvise only changes how the kernel backs pages of this process's own
        // mapping; [start, end) lies inside the allocation made by the caller (not yet
        // initialised, so nothing in it can be lost), and MADV_HUGEPAGE neither unmaps nor
        // discards contents. A failure (THP disabled, EINVAL) leaves the mapping as it was.
        let _ =
            unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE) };
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_huge(_addr: usize, _len: usize) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefetch_changes_nothing() {
        let mut v = [1u64, 2, 3];
        prefetch_read(&v[1]);
        prefetch_write(&mut v[2]);
        assert_eq!(v, [1, 2, 3]);
    }

    #[test]
    fn huge_boxed_slices_hold_their_initial_value_small_and_large() {
        let small = huge_boxed_slice(3, 7u32);
        assert_eq!(&*small, &[7, 7, 7]);
        let n = (HUGE_MIN_BYTES * 2) / 8 + 5;
        let mut large = huge_boxed_slice(n, 0xabu64);
        assert_eq!(large.len(), n);
        assert!(large.iter().all(|&x| x == 0xab));
        large[n - 1] = 1;
        assert_eq!(large[n - 1], 1);
        assert!(huge_boxed_slice::<u8>(0, 0).is_empty());
    }
}

//! Hints to the CPU and the kernel for the data plane's large tables, and the one vector scan
//! of their buckets, and nothing else.
//!
//! The packet pipeline (`clua-pipeline`) is `#![forbid(unsafe_code)]`; the only three things it
//! cannot say in safe Rust live here, each behind a safe function with `// SAFETY:` blocks:
//!
//! - [`prefetch_read`] / [`prefetch_write`]: start loading the cache line holding a value
//!   (x86_64 `prefetcht0`, like DPDK's `rte_prefetch0`), so that the misses of a whole burst's
//!   table look-ups overlap instead of stalling one after the other. A prefetch is a hint: it
//!   never faults, never changes memory, and is a no-op on other architectures.
//! - [`huge_boxed_slice`]: a boxed slice whose pages the kernel is asked to back with
//!   transparent huge pages (`madvise(MADV_HUGEPAGE)`, Linux; THP in `madvise` mode is the
//!   Debian default). A 1M-flow connection table is ~80 MiB: with 4 KiB pages every look-up is
//!   also a TLB miss (a page walk); with 2 MiB pages the whole table fits the second-level TLB.
//! - [`scan8`]: which of a bucket's eight slots hold a given signature and are live, with SSE2
//!   (x86_64 baseline) compares and one `pmovmskb`. Written as a loop over the lanes, LLVM
//!   vectorises only half of it and builds the mask bit by bit; the scan runs four times per
//!   packet and was 23 % of the pipeline's time with 1,024 flows (issue 12, perf). Elsewhere it
//!   is the same scan in plain Rust ([`scan8_scalar`], which the tests hold it to).
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

/// What [`scan8`] found in a bucket's eight slots: bit `w` of each mask is slot `w`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lanes {
    /// Live (see [`scan8`]) and holding the signature asked for.
    pub matched: u32,
    /// Live.
    pub live: u32,
    /// In use (expiry not 0, live or not) and holding the signature asked for.
    pub used: u32,
}

/// Scans a bucket's eight `(signature, expiry)` slots for `sig` at clock `now`. A slot is
/// *live* when its expiry `e` is not 0 and `e - now - 1` (wrapping) is below `window`: the
/// connection table's clock invariant (clua-pipeline's conntrack module, "Time").
#[inline(always)]
pub fn scan8(sigs: &[u16; 8], expiry: &[u32; 8], sig: u16, now: u32, window: u32) -> Lanes {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    {
        use core::arch::x86_64::*;
        // SAFETY: SSE2 is enabled at compile time (the cfg above; it is the x86_64 baseline),
        // so every intrinsic below exists on the CPU. The three unaligned loads read exactly
        // the 16 bytes of `sigs` and the two 16-byte halves of `expiry`, all inside the
        // referenced arrays; nothing is written.
        unsafe {
            let s = _mm_loadu_si128(sigs.as_ptr().cast());
            let e0 = _mm_loadu_si128(expiry.as_ptr().cast());
            let e1 = _mm_loadu_si128(expiry.as_ptr().add(4).cast());
            let eq = _mm_cmpeq_epi16(s, _mm_set1_epi16(sig as i16));
            // Unsigned `d < window` as a signed compare of both sides with the top bit flipped.
            let flip = _mm_set1_epi32(i32::MIN);
            let start = _mm_set1_epi32(now.wrapping_add(1) as i32);
            let lim = _mm_set1_epi32((window ^ 0x8000_0000) as i32);
            let zero = _mm_setzero_si128();
            let in0 = _mm_cmplt_epi32(_mm_xor_si128(_mm_sub_epi32(e0, start), flip), lim);
            let in1 = _mm_cmplt_epi32(_mm_xor_si128(_mm_sub_epi32(e1, start), flip), lim);
            let nz0 = _mm_cmpeq_epi32(e0, zero);
            let nz1 = _mm_cmpeq_epi32(e1, zero);
            // 32-bit lanes to 16-bit (saturating packs keep 0 and -1).
            let live = _mm_packs_epi32(_mm_andnot_si128(nz0, in0), _mm_andnot_si128(nz1, in1));
            let used = _mm_andnot_si128(_mm_packs_epi32(nz0, nz1), eq);
            let matched = _mm_and_si128(eq, live);
            // 16-bit lanes to bytes: matched in bytes 0-7, live in 8-15; then used.
            let ml = _mm_movemask_epi8(_mm_packs_epi16(matched, live)) as u32;
            let u = _mm_movemask_epi8(_mm_packs_epi16(used, zero)) as u32;
            Lanes {
                matched: ml & 0xff,
                live: ml >> 8,
                used: u,
            }
        }
    }
    #[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
    scan8_scalar(sigs, expiry, sig, now, window)
}

/// [`scan8`] in plain Rust: what it must compute, lane by lane.
#[inline(always)]
pub fn scan8_scalar(sigs: &[u16; 8], expiry: &[u32; 8], sig: u16, now: u32, window: u32) -> Lanes {
    let mut l = Lanes {
        matched: 0,
        live: 0,
        used: 0,
    };
    for w in 0..8 {
        let e = expiry[w];
        let live = (e != 0) & (e.wrapping_sub(now).wrapping_sub(1) < window);
        let same = sigs[w] == sig;
        l.matched |= u32::from(same & live) << w;
        l.live |= u32::from(live) << w;
        l.used |= u32::from(same & (e != 0)) << w;
    }
    l
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

    /// The vector scan agrees with the scalar one on every lane pattern: signatures equal or
    /// not, expiries 0, just dead, just live, at the window's edge, across the clock's wrap.
    #[test]
    fn scan8_is_the_scalar_scan() {
        const W: u32 = (1 << 30) + 1;
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for round in 0..20_000 {
            let now = match round % 4 {
                0 => rnd() as u32,
                1 => u32::MAX - (rnd() % 3) as u32,
                2 => (rnd() % 3) as u32,
                _ => 1 << 31,
            };
            let sig = (rnd() % 4) as u16;
            let mut sigs = [0u16; 8];
            let mut exp = [0u32; 8];
            for w in 0..8 {
                sigs[w] = (rnd() % 4) as u16;
                exp[w] = match rnd() % 8 {
                    0 => 0,
                    1 => now,
                    2 => now.wrapping_add(1),
                    3 => now.wrapping_add(W),
                    4 => now.wrapping_add(W + 1),
                    5 => now.wrapping_sub(1),
                    _ => rnd() as u32,
                };
            }
            assert_eq!(
                scan8(&sigs, &exp, sig, now, W),
                scan8_scalar(&sigs, &exp, sig, now, W),
                "sigs {sigs:?} expiry {exp:?} sig {sig} now {now}"
            );
        }
        let l = scan8(
            &[5, 5, 1, 5, 5, 5, 5, 5],
            &[10, 0, 10, 3, 10, 9, 11, 10],
            5,
            9,
            W,
        );
        assert_eq!(
            l.live, 0b1101_0101,
            "slots 1 (empty), 3 and 5 (dead) not live"
        );
        assert_eq!(l.matched, 0b1101_0001, "slot 2 has another signature");
        assert_eq!(l.used, 0b1111_1001);
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

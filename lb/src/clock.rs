//! Where the worker loop's time comes from: the TSC on a router, anything in a test.

/// Milliseconds on a monotonic clock, read once per received burst (connection-table ageing,
/// the refusal rate limit). Any `Fn() -> u64` is one, so tests pass fake time as a closure.
pub trait Clock {
    /// The current time in milliseconds.
    fn now_ms(&self) -> u64;
    /// The current time in microseconds on the same clock (capture timestamps, read once per
    /// burst and only while a capture runs). Millisecond clocks need not say more.
    fn now_us(&self) -> u64 {
        self.now_ms().saturating_mul(1000)
    }
}

impl<F: Fn() -> u64> Clock for F {
    #[inline]
    fn now_ms(&self) -> u64 {
        self()
    }
}

/// The CPU's time-stamp counter through DPDK (`rte_rdtsc`), in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TscClock {
    /// TSC ticks per millisecond (`Eal::tsc_hz() / 1000`); 0 is taken as 1.
    pub tsc_per_ms: u64,
}

impl TscClock {
    /// A clock over a TSC running at `tsc_hz`.
    pub fn new(tsc_hz: u64) -> Self {
        TscClock {
            tsc_per_ms: (tsc_hz / 1000).max(1),
        }
    }
}

impl Clock for TscClock {
    #[inline]
    fn now_ms(&self) -> u64 {
        clua_dpdk::tsc() / self.tsc_per_ms.max(1)
    }
    #[inline]
    fn now_us(&self) -> u64 {
        (u128::from(clua_dpdk::tsc()) * 1000 / u128::from(self.tsc_per_ms.max(1))) as u64
    }
}

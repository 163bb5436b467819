//! The calling thread's timer slack (`prctl(PR_SET_TIMERSLACK)`), for workers that sleep when
//! idle (issue 12, lb/src/idle.rs).
//!
//! Linux lets a sleep end up to the thread's timer slack late so that wake-ups can be
//! coalesced: 50 us by default, which makes a 1 us `nanosleep` take ~70 us (measured,
//! docs/performance.md "Idle cost"). A worker that bounds its wake-up latency lowers it for
//! the time it runs. Not DPDK, but OS access with `unsafe`, kept with the rest of clua's.

use std::io;

/// The calling thread's timer slack in nanoseconds (`PR_GET_TIMERSLACK`).
pub fn timer_slack_ns() -> io::Result<u64> {
    // SAFETY: PR_GET_TIMERSLACK takes no pointer; it returns the slack or -1 with errno.
    let r = unsafe { libc::prctl(libc::PR_GET_TIMERSLACK, 0, 0, 0, 0) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(r as u64)
}

/// Sets the calling thread's timer slack to `ns` nanoseconds (`PR_SET_TIMERSLACK`). 0 is
/// refused (`EINVAL`): the kernel takes it as "back to the thread's default", not as none.
pub fn set_timer_slack_ns(ns: u64) -> io::Result<()> {
    if ns == 0 {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let ns = libc::c_ulong::try_from(ns).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: PR_SET_TIMERSLACK takes a value, no pointer, and affects the calling thread only.
    let r = unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, ns, 0, 0, 0) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_then_get_on_a_thread_of_its_own() {
        // A thread of its own: the slack is per thread and the test harness reuses threads.
        std::thread::spawn(|| {
            let before = timer_slack_ns().unwrap();
            set_timer_slack_ns(1_000).unwrap();
            assert_eq!(timer_slack_ns().unwrap(), 1_000);
            set_timer_slack_ns(before).unwrap();
            assert_eq!(timer_slack_ns().unwrap(), before);
            assert!(set_timer_slack_ns(0).is_err());
        })
        .join()
        .unwrap();
    }
}

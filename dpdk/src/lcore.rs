//! Running closures on worker lcores.

use std::ffi::{c_int, c_void};
use std::marker::PhantomData;
use std::panic::{catch_unwind, AssertUnwindSafe};

use clua_dpdk_sys as sys;

use crate::eal::{ensure_running, lcore_id};
use crate::Error;

type Job = Box<dyn FnOnce() -> i32 + Send + 'static>;

/// Entry point EAL calls on the worker lcore: unboxes the job and runs it, turning a panic
/// into `-1` (unwinding into C is undefined).
unsafe extern "C" fn trampoline(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the Box<Job> leaked by `launch`, passed exactly once to this call.
    let job: Box<Job> = unsafe { Box::from_raw(arg.cast::<Job>()) };
    catch_unwind(AssertUnwindSafe(move || (*job)())).unwrap_or(-1)
}

/// A closure running on a worker lcore. [`Launched::wait`] returns its result; dropping it
/// without waiting also waits (the lcore cannot be launched again before).
///
/// Not `Send`: waiting must happen on the main lcore.
#[derive(Debug)]
#[must_use = "dropping a Launched waits for the lcore"]
pub struct Launched {
    lcore: u32,
    waited: bool,
    _main_only: PhantomData<*const ()>,
}

impl Launched {
    /// The lcore the closure runs on.
    pub fn lcore(&self) -> u32 {
        self.lcore
    }

    /// Waits for the closure to finish and returns its value (`-1` if it panicked).
    pub fn wait(mut self) -> i32 {
        self.waited = true;
        // SAFETY: called on the main lcore (Launched is !Send and launch checks it), for an
        // lcore we launched.
        unsafe { sys::rte_eal_wait_lcore(self.lcore) }
    }
}

impl Drop for Launched {
    fn drop(&mut self) {
        if !self.waited {
            // SAFETY: as in `wait`.
            unsafe {
                sys::rte_eal_wait_lcore(self.lcore);
            }
        }
    }
}

/// Runs `f` on worker lcore `lcore` (`rte_eal_remote_launch`). Call from the main lcore.
///
/// A panic in `f` is caught and reported as the value `-1` (with `panic = "abort"`, as in
/// the release profile, it aborts the process instead).
///
/// # Errors
/// [`Error::NotInitialized`]; [`Error::InvalidArgument`] when not called from the main lcore or
/// `lcore` is the main lcore; [`Error::Dpdk`] with `EBUSY` when the lcore is still running
/// something, `EINVAL` for a disabled lcore.
pub fn launch(lcore: u32, f: impl FnOnce() -> i32 + Send + 'static) -> Result<Launched, Error> {
    ensure_running()?;
    // SAFETY: EAL is running; reads a configuration value.
    let main = unsafe { sys::rte_get_main_lcore() };
    if lcore_id() != main || lcore == main {
        return Err(Error::InvalidArgument {
            call: "rte_eal_remote_launch",
            what: "launch from the main lcore onto a worker lcore",
        });
    }
    if lcore >= sys::RTE_MAX_LCORE {
        return Err(Error::dpdk("rte_eal_remote_launch", libc::EINVAL));
    }
    let job: Box<Job> = Box::new(Box::new(f));
    let arg = Box::into_raw(job).cast::<c_void>();
    // SAFETY: trampoline matches lcore_function_t; arg is a leaked Box<Job> that the
    // trampoline reclaims exactly once if the launch succeeds.
    let ret = unsafe { sys::rte_eal_remote_launch(Some(trampoline), arg, lcore) };
    if ret < 0 {
        // SAFETY: the launch failed, so the trampoline will never see arg: reclaim it.
        drop(unsafe { Box::from_raw(arg.cast::<Job>()) });
        return Err(Error::dpdk("rte_eal_remote_launch", ret));
    }
    Ok(Launched {
        lcore,
        waited: false,
        _main_only: PhantomData,
    })
}

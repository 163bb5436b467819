//! EAL initialisation and teardown, lcore enumeration, time stamp counter.

use std::ffi::{c_char, c_int, CString};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering};

use clua_dpdk_sys as sys;

use crate::Error;

/// Set once `rte_eal_init` has been attempted; EAL cannot be initialised twice per process, even
/// after `rte_eal_cleanup`.
static INIT_ATTEMPTED: AtomicBool = AtomicBool::new(false);
/// True between a successful `rte_eal_init` and `rte_eal_cleanup`.
static RUNNING: AtomicBool = AtomicBool::new(false);

/// The program name put in front of the EAL arguments as `argv[0]`.
pub const ARGV0: &str = "clua";

/// Whether EAL is initialised (and not yet cleaned up) in this process.
pub fn is_initialized() -> bool {
    RUNNING.load(Ordering::Acquire)
}

/// `Err(NotInitialized)` unless EAL is running: guards constructors that would crash without it.
pub(crate) fn ensure_running() -> Result<(), Error> {
    if is_initialized() {
        Ok(())
    } else {
        Err(Error::NotInitialized)
    }
}

/// Whether EAL arguments restrict device probing: `--no-pci`, or an allow-list
/// (`-a X`, `-aX`, `--allow X`, `--allow=X`). Arguments after a `--` are the application's and do
/// not count.
pub fn restricts_devices(args: &[String]) -> bool {
    args.iter().take_while(|a| a.as_str() != "--").any(|a| {
        a == "--no-pci" || a == "--allow" || a.starts_with("--allow=") || a.starts_with("-a")
    })
}

/// The initialised DPDK Environment Abstraction Layer. Dropping it calls `rte_eal_cleanup`.
///
/// Only one `Eal` can ever exist per process. It is neither `Send` nor `Sync`: it lives on the
/// main lcore (the thread that called [`Eal::init`]), where cleanup must run. Drop every
/// [`crate::Port`], [`crate::Mempool`], [`crate::Ring`] and [`crate::Mbuf`] before it.
#[derive(Debug)]
pub struct Eal {
    _not_send: PhantomData<*const ()>,
}

impl Eal {
    /// Initialises EAL with `args`, which are EAL arguments only: **without** the program name,
    /// which this function supplies as [`ARGV0`].
    ///
    /// # Errors
    /// - [`Error::UnrestrictedDevices`], without calling EAL, unless `args` contain `--no-pci`
    ///   or an `-a`/`--allow` device list (so a test can never grab the machine's NIC);
    /// - [`Error::AlreadyInitialized`] on any call after the first;
    /// - [`Error::InvalidArgument`] if an argument has a NUL byte;
    /// - [`Error::Dpdk`] with `rte_errno` if `rte_eal_init` fails.
    pub fn init(args: &[String]) -> Result<Eal, Error> {
        if !restricts_devices(args) {
            return Err(Error::UnrestrictedDevices);
        }
        let mut owned = Vec::with_capacity(args.len() + 1);
        for a in std::iter::once(ARGV0).chain(args.iter().map(String::as_str)) {
            owned.push(CString::new(a).map_err(|_| Error::InvalidArgument {
                call: "rte_eal_init",
                what: "an argument contains a NUL byte",
            })?);
        }
        if INIT_ATTEMPTED.swap(true, Ordering::AcqRel) {
            return Err(Error::AlreadyInitialized);
        }
        // EAL may keep pointers into argv (it permutes the array and some versions reference the
        // strings later), and it runs once per process: leak both, a few bytes once.
        let strings: &'static mut [CString] = Vec::leak(owned);
        let mut argv: Vec<*mut c_char> =
            strings.iter_mut().map(|s| s.as_ptr().cast_mut()).collect();
        argv.push(std::ptr::null_mut());
        let argv: &'static mut [*mut c_char] = Vec::leak(argv);
        let argc = (argv.len() - 1) as c_int;
        // SAFETY: argv holds argc pointers to NUL-terminated strings followed by NULL, all
        // leaked so they outlive EAL. INIT_ATTEMPTED guarantees this is the only call in the
        // process.
        let ret = unsafe { sys::rte_eal_init(argc, argv.as_mut_ptr()) };
        if ret < 0 {
            return Err(Error::from_rte_errno("rte_eal_init"));
        }
        RUNNING.store(true, Ordering::Release);
        Ok(Eal {
            _not_send: PhantomData,
        })
    }

    /// The enabled worker lcores (every enabled lcore but the main one), ascending.
    pub fn worker_lcores(&self) -> Vec<u32> {
        let mut out = Vec::new();
        // Start like RTE_LCORE_FOREACH_WORKER: from -1 as unsigned.
        let mut i = u32::MAX;
        loop {
            // SAFETY: EAL is initialised (we hold an Eal); rte_get_next_lcore only reads the
            // lcore configuration and accepts any index.
            i = unsafe { sys::rte_get_next_lcore(i, 1, 0) };
            if i >= sys::RTE_MAX_LCORE {
                return out;
            }
            out.push(i);
        }
    }

    /// The main lcore: the one that called [`Eal::init`].
    pub fn main_lcore(&self) -> u32 {
        // SAFETY: EAL is initialised; this reads a configuration field.
        unsafe { sys::rte_get_main_lcore() }
    }

    /// Time stamp counter ticks per second, as measured by EAL.
    pub fn tsc_hz(&self) -> u64 {
        // SAFETY: EAL is initialised; this reads a value set during init.
        unsafe { sys::rte_get_tsc_hz() }
    }
}

impl Drop for Eal {
    fn drop(&mut self) {
        RUNNING.store(false, Ordering::Release);
        // SAFETY: called once, from the thread that initialised EAL (Eal is !Send). The caller
        // is documented to have dropped every DPDK object first.
        unsafe {
            sys::rte_eal_cleanup();
        }
    }
}

/// The time stamp counter (`rte_rdtsc`). Works without EAL; see [`Eal::tsc_hz`] for its rate.
#[inline]
pub fn tsc() -> u64 {
    // SAFETY: reads the CPU's TSC; no memory is touched.
    unsafe { sys::clua_rdtsc() }
}

/// The calling thread's lcore id (`rte_lcore_id`), or `u32::MAX` (`LCORE_ID_ANY`) for a thread
/// EAL did not create.
#[inline]
pub fn lcore_id() -> u32 {
    // SAFETY: reads a thread-local variable EAL defines (LCORE_ID_ANY when unset).
    unsafe { sys::clua_lcore_id() }
}

/// The NUMA socket of the calling thread (`rte_socket_id`).
pub fn socket_id() -> u32 {
    // SAFETY: reads a thread-local variable EAL defines.
    unsafe { sys::rte_socket_id() }
}

/// Spin-loop hint (`rte_pause`).
#[inline]
pub fn pause() {
    // SAFETY: a CPU pause instruction; no memory is touched.
    unsafe { sys::clua_pause() }
}

/// The calling thread's `rte_errno`.
pub fn rte_errno() -> i32 {
    // SAFETY: reads a thread-local variable.
    unsafe { sys::clua_errno() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn device_restriction_is_required() {
        assert!(restricts_devices(&s(&["-l", "0", "--no-pci"])));
        assert!(restricts_devices(&s(&["-a", "0000:01:00.0"])));
        assert!(restricts_devices(&s(&["-a0000:01:00.0"])));
        assert!(restricts_devices(&s(&["--allow=0000:01:00.0"])));
        assert!(restricts_devices(&s(&["--allow", "0000:01:00.0"])));
        assert!(!restricts_devices(&s(&["-l", "0", "--vdev", "net_null0"])));
        assert!(!restricts_devices(&s(&["-l", "0", "--", "--no-pci"])));
        assert!(!restricts_devices(&[]));
    }

    #[test]
    fn init_without_restriction_is_refused_before_eal() {
        assert_eq!(
            Eal::init(&s(&["--no-huge", "-m", "64"])).unwrap_err(),
            Error::UnrestrictedDevices
        );
        assert!(!is_initialized());
    }

    #[test]
    fn tsc_advances() {
        let a = tsc();
        let b = tsc();
        assert!(b >= a);
    }
}

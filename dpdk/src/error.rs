//! The error type of every fallible call in this crate.

use std::ffi::CStr;
use std::fmt;

/// Why a call into DPDK (or a check in front of one) failed.
///
/// `Copy`, so it can be returned from the packet path without allocating. [`fmt::Display`]
/// names the failing DPDK call and the errno's text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// A DPDK call failed; `errno` is positive (DPDK's `-errno` returns and `rte_errno` are
    /// both normalised to it).
    Dpdk {
        /// The C function that failed, such as `"rte_eth_dev_configure"`.
        call: &'static str,
        /// The positive errno value.
        errno: i32,
    },
    /// [`crate::Eal::init`] was given arguments that would let EAL probe every PCI device:
    /// neither `--no-pci` nor an allow-list (`-a`/`--allow`). EAL was not called.
    UnrestrictedDevices,
    /// [`crate::Eal::init`] was already called in this process (EAL initialises only once).
    AlreadyInitialized,
    /// The call needs EAL, which is not (or no longer) initialised.
    NotInitialized,
    /// An argument was rejected before calling DPDK, e.g. a name with an interior NUL byte or a
    /// queue count the device does not support.
    InvalidArgument {
        /// The C function that would have been called.
        call: &'static str,
        /// What is wrong with the argument.
        what: &'static str,
    },
}

impl Error {
    /// A [`Error::Dpdk`] from an errno of either sign.
    pub(crate) fn dpdk(call: &'static str, errno: i32) -> Error {
        Error::Dpdk {
            call,
            errno: errno.saturating_abs(),
        }
    }

    /// A [`Error::Dpdk`] carrying the calling thread's current `rte_errno`.
    pub(crate) fn from_rte_errno(call: &'static str) -> Error {
        Error::dpdk(call, crate::rte_errno())
    }

    /// Turns a C status (`0` or more is success, negative is `-errno`) into a result.
    pub(crate) fn check(call: &'static str, ret: i32) -> Result<i32, Error> {
        if ret < 0 {
            Err(Error::dpdk(call, ret))
        } else {
            Ok(ret)
        }
    }

    /// The positive errno, for [`Error::Dpdk`].
    pub fn errno(&self) -> Option<i32> {
        match *self {
            Error::Dpdk { errno, .. } => Some(errno),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Error::Dpdk { call, errno } => {
                // SAFETY: rte_strerror accepts any int and returns a pointer to a NUL-terminated
                // string, either static or in a per-thread buffer that stays valid until this
                // thread's next rte_strerror call; we copy it out before returning.
                let text = unsafe { CStr::from_ptr(clua_dpdk_sys::rte_strerror(errno)) };
                write!(
                    f,
                    "{call} failed: {} (errno {errno})",
                    text.to_string_lossy()
                )
            }
            Error::UnrestrictedDevices => f.write_str(
                "rte_eal_init refused: EAL arguments need --no-pci or an -a/--allow device list",
            ),
            Error::AlreadyInitialized => {
                f.write_str("rte_eal_init refused: EAL was already initialised in this process")
            }
            Error::NotInitialized => f.write_str("DPDK call refused: EAL is not initialised"),
            Error::InvalidArgument { call, what } => write!(f, "{call} refused: {what}"),
        }
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_call_and_errno() {
        let e = Error::dpdk("rte_eth_dev_configure", -22);
        assert_eq!(e.errno(), Some(22));
        let s = e.to_string();
        assert!(s.starts_with("rte_eth_dev_configure failed: "), "{s}");
        assert!(s.ends_with("(errno 22)"), "{s}");
        assert!(Error::UnrestrictedDevices.to_string().contains("--no-pci"));
        assert_eq!(Error::AlreadyInitialized.errno(), None);
    }

    #[test]
    fn check_splits_on_sign() {
        assert_eq!(Error::check("f", 3), Ok(3));
        assert_eq!(
            Error::check("f", -12),
            Err(Error::Dpdk {
                call: "f",
                errno: 12
            })
        );
    }
}

//! The kernel's own counters of this process's AF_XDP sockets (`getsockopt(XDP_STATISTICS)`).
//!
//! net_af_xdp in DPDK 22.11 has no xstats of its own; its `stats_get` reads `XDP_STATISTICS`
//! but adds only `rx_dropped` to `imissed`. The socket's RX-ring-full and fill-ring-empty drops
//! (what the redirecting XDP program sees as `ENOBUFS`, `xdp_redirect_err` on a veth) are in
//! no ethdev counter, basic or extended, and the PMD keeps the socket private. The socket is
//! still a descriptor of this process: [`xsk_sockets`] finds the AF_XDP ones among
//! `/proc/self/fd` (those that answer `XDP_STATISTICS`), and the caller tells which port they
//! belong to by listing them before and after the port's queues are set up (aliasd does, one
//! socket per RX queue, in queue order).
//!
//! The kernel's sock_diag for AF_XDP (`ss --xdp -e`) would name the interface and queue of
//! each socket, but needs `CONFIG_XDP_SOCKETS_DIAG`, which common kernels (the lab's among
//! them) leave out; `XDP_STATISTICS` needs nothing but the descriptor.

use std::io;
use std::os::fd::RawFd;

/// One AF_XDP socket's counters (`struct xdp_statistics`, Linux 5.9+ layout).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XskStats {
    /// The RX queue of the port the socket serves (set by the caller; see the module docs).
    pub queue_id: u32,
    /// Frames dropped for other reasons (e.g. larger than a UMEM frame).
    pub rx_dropped: u64,
    /// Invalid descriptors the kernel found in the fill ring.
    pub rx_invalid: u64,
    /// Frames dropped because the socket's RX ring was full (the application was too slow).
    pub rx_ring_full: u64,
    /// Times the kernel found the fill ring empty (no buffer to receive into).
    pub fill_ring_empty: u64,
    /// Invalid descriptors in the TX ring.
    pub tx_invalid: u64,
    /// Times the TX ring was empty when the kernel was woken to send.
    pub tx_ring_empty: u64,
}

const SOL_XDP: libc::c_int = 283;
const XDP_STATISTICS: libc::c_int = 7;

/// An AF_XDP socket this process holds (opened and owned by a PMD: only read here).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct XskSocket {
    /// Its inode: what a later read checks, so that a descriptor the PMD closed and the
    /// process reused for something else is never read as this socket.
    pub inode: u64,
    /// The descriptor.
    pub fd: RawFd,
}

/// `getsockopt(fd, SOL_XDP, XDP_STATISTICS)`: the six counters, or the error (`ENOPROTOOPT`
/// for a socket that is not AF_XDP).
fn statistics(fd: RawFd) -> io::Result<[u64; 6]> {
    let mut v = [0u64; 6];
    let mut len = std::mem::size_of_val(&v) as libc::socklen_t;
    // SAFETY: v is writable for len bytes and len points to its size; the kernel writes at
    // most len bytes and stores the written size in len. A closed or foreign fd only errs.
    let r =
        unsafe { libc::getsockopt(fd, SOL_XDP, XDP_STATISTICS, v.as_mut_ptr().cast(), &mut len) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(v)
}

/// The inode of a `/proc/self/fd` link target `socket:[N]`.
fn socket_inode(target: &str) -> Option<u64> {
    target
        .strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// This process's AF_XDP sockets, by inode (creation order). Allocates and reads
/// `/proc/self/fd`: for the control and metrics threads, not the packet path.
pub fn xsk_sockets() -> Vec<XskSocket> {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return Vec::new();
    };
    let mut out: Vec<XskSocket> = dir
        .flatten()
        .filter_map(|e| {
            let fd: RawFd = e.file_name().to_str()?.parse().ok()?;
            let inode = socket_inode(&std::fs::read_link(e.path()).ok()?.to_string_lossy())?;
            statistics(fd).ok()?;
            Some(XskSocket { inode, fd })
        })
        .collect();
    out.sort();
    out
}

impl XskSocket {
    /// The socket's counters now, with `queue_id` as given; `None` once the descriptor is no
    /// longer this socket (the port was closed).
    pub fn stats(&self, queue_id: u32) -> Option<XskStats> {
        let target = std::fs::read_link(format!("/proc/self/fd/{}", self.fd)).ok()?;
        if socket_inode(&target.to_string_lossy())? != self.inode {
            return None;
        }
        let [rx_dropped, rx_invalid, tx_invalid, rx_ring_full, fill_ring_empty, tx_ring_empty] =
            statistics(self.fd).ok()?;
        Some(XskStats {
            queue_id,
            rx_dropped,
            rx_invalid,
            rx_ring_full,
            fill_ring_empty,
            tx_invalid,
            tx_ring_empty,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

    #[test]
    fn socket_links_name_their_inode() {
        assert_eq!(socket_inode("socket:[12345]"), Some(12345));
        assert_eq!(socket_inode("pipe:[12345]"), None);
        assert_eq!(socket_inode("/dev/null"), None);
        assert_eq!(socket_inode("socket:[x]"), None);
    }

    #[test]
    fn other_sockets_are_not_xdp_sockets() {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        assert!(statistics(udp.as_raw_fd()).is_err());
        assert!(!xsk_sockets().iter().any(|s| s.fd == udp.as_raw_fd()));
    }

    #[test]
    fn an_xdp_socket_is_found_and_read_until_closed() {
        const AF_XDP: libc::c_int = 44;
        // SAFETY: socket(2) with constant arguments; checked before use.
        let fd = unsafe { libc::socket(AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            // Needs CAP_NET_RAW and a kernel with AF_XDP: nothing to check without them.
            eprintln!("no AF_XDP socket: {}", io::Error::last_os_error());
            return;
        }
        // SAFETY: a fresh descriptor nothing else owns.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        let found: Vec<_> = xsk_sockets().into_iter().filter(|s| s.fd == fd).collect();
        assert_eq!(found.len(), 1, "the AF_XDP socket is listed");
        let s = found[0]
            .stats(3)
            .expect("an unbound socket still has counters");
        assert_eq!(
            s,
            XskStats {
                queue_id: 3,
                ..XskStats::default()
            }
        );
        drop(owned);
        assert_eq!(found[0].stats(3), None, "closed: not read");
    }
}

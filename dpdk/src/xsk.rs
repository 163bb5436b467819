//! The kernel's own counters of this process's AF_XDP sockets (`XDP_STATISTICS`, as the
//! kernel's sock_diag reports them).
//!
//! net_af_xdp in DPDK 22.11 reads `XDP_STATISTICS` in its `stats_get` but adds only
//! `rx_dropped` to `imissed`; the socket's RX-ring-full and fill-ring-empty drops (what the
//! redirecting XDP program sees as `ENOBUFS`, `xdp_redirect_err` on the veth) are nowhere in
//! ethdev, basic or extended statistics, and the socket's descriptor is private to the PMD. The
//! kernel reports the same counters per socket through `NETLINK_SOCK_DIAG` (`AF_XDP` family,
//! `XDP_SHOW_INFO | XDP_SHOW_STATS`, Linux 5.9+; `ss --xdp -e` prints them): this module asks
//! it, and keeps the sockets whose inode is one of this process's descriptors, so another
//! program's sockets in the same network namespace are never counted.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// One AF_XDP socket's counters (`struct xdp_diag_stats`), with the interface and queue it is
/// bound to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XskStats {
    /// Interface index the socket is bound to.
    pub ifindex: u32,
    /// Queue of that interface.
    pub queue_id: u32,
    /// Socket inode (what `/proc/self/fd/N` names as `socket:[inode]`).
    pub inode: u32,
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

const NETLINK_SOCK_DIAG: i32 = 4;
const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_DUMP: u16 = 0x300;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const AF_XDP: u8 = 44;
const XDP_SHOW_INFO: u32 = 1;
const XDP_SHOW_STATS: u32 = 1 << 4;
const XDP_DIAG_INFO: u16 = 1;
const XDP_DIAG_STATS: u16 = 9;
const NLMSG_HDR: usize = 16;
const XDP_DIAG_MSG: usize = 16;

/// The dump request: `nlmsghdr` + `xdp_diag_req`, native byte order.
fn request(seq: u32) -> Vec<u8> {
    let len = (NLMSG_HDR + 20) as u32;
    let mut m = Vec::with_capacity(len as usize);
    m.extend_from_slice(&len.to_ne_bytes());
    m.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    m.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    m.extend_from_slice(&seq.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    m.push(AF_XDP);
    m.push(0); // protocol
    m.extend_from_slice(&0u16.to_ne_bytes()); // pad
    m.extend_from_slice(&0u32.to_ne_bytes()); // any inode
    m.extend_from_slice(&(XDP_SHOW_INFO | XDP_SHOW_STATS).to_ne_bytes());
    m.extend_from_slice(&[0xff; 8]); // no cookie: every socket
    m
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_ne_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// What one datagram of the dump holds: the sockets, and whether the dump is over.
fn parse(mut b: &[u8], out: &mut Vec<XskStats>) -> io::Result<bool> {
    while b.len() >= NLMSG_HDR {
        let len = u32_at(b, 0).unwrap_or(0) as usize;
        let kind = u16_at(b, 4).unwrap_or(0);
        if len < NLMSG_HDR || len > b.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "sock_diag: truncated message",
            ));
        }
        let msg = &b[..len];
        match kind {
            NLMSG_DONE => return Ok(true),
            NLMSG_ERROR => {
                let errno = u32_at(msg, NLMSG_HDR).map_or(0, |e| -(e as i32));
                return Err(io::Error::from_raw_os_error(errno));
            }
            SOCK_DIAG_BY_FAMILY => out.push(parse_socket(msg)),
            _ => {}
        }
        b = &b[len.next_multiple_of(4).min(b.len())..];
    }
    Ok(false)
}

fn parse_socket(msg: &[u8]) -> XskStats {
    let mut s = XskStats {
        inode: u32_at(msg, NLMSG_HDR + 4).unwrap_or(0),
        ..XskStats::default()
    };
    let mut at = NLMSG_HDR + XDP_DIAG_MSG;
    while let (Some(len), Some(kind)) = (u16_at(msg, at), u16_at(msg, at + 2)) {
        let len = usize::from(len);
        if len < 4 {
            break;
        }
        let v = at + 4;
        match kind {
            XDP_DIAG_INFO => {
                s.ifindex = u32_at(msg, v).unwrap_or(0);
                s.queue_id = u32_at(msg, v + 4).unwrap_or(0);
            }
            XDP_DIAG_STATS => {
                let f = |i: usize| u64_at(msg, v + 8 * i).unwrap_or(0);
                s.rx_dropped = f(0);
                s.rx_invalid = f(1);
                s.rx_ring_full = f(2);
                s.fill_ring_empty = f(3);
                s.tx_invalid = f(4);
                s.tx_ring_empty = f(5);
            }
            _ => {}
        }
        at += len.next_multiple_of(4);
    }
    s
}

/// Inodes of this process's sockets (`/proc/self/fd/N -> socket:[inode]`).
fn own_socket_inodes() -> io::Result<Vec<u32>> {
    let mut inodes = Vec::new();
    for e in std::fs::read_dir("/proc/self/fd")? {
        let Ok(target) = std::fs::read_link(e?.path()) else {
            continue;
        };
        let t = target.to_string_lossy();
        if let Some(n) = t
            .strip_prefix("socket:[")
            .and_then(|r| r.strip_suffix(']'))
            .and_then(|n| n.parse().ok())
        {
            inodes.push(n);
        }
    }
    Ok(inodes)
}

/// The counters of every AF_XDP socket this process holds, in the kernel's order. Empty when
/// there is none (e.g. ports on other PMDs). Allocates and makes a netlink round trip: for the
/// metrics and control threads.
///
/// # Errors
/// The netlink socket's errors (`EPROTONOSUPPORT`/`ENOENT` on kernels without AF_XDP
/// sock_diag, `xsk_diag` not loaded).
pub fn xsk_stats() -> io::Result<Vec<XskStats>> {
    // SAFETY: socket(2) with constant arguments; the result is checked before use.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            NETLINK_SOCK_DIAG,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor nothing else owns; OwnedFd closes it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let req = request(1);
    // SAFETY: the buffer is valid for req.len() bytes for the call; the kernel (pid 0) is the
    // default destination of an unbound netlink socket.
    let sent = unsafe { libc::send(fd.as_raw_fd(), req.as_ptr().cast(), req.len(), 0) };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut all = Vec::new();
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        // SAFETY: buf is writable for buf.len() bytes; recv writes at most that many.
        let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        if n == 0 || parse(&buf[..n as usize], &mut all)? {
            break;
        }
    }
    let own = own_socket_inodes()?;
    all.retain(|s| own.contains(&s.inode));
    Ok(all)
}

/// The index of interface `name` in this network namespace, if it exists.
pub fn ifindex(name: &str) -> Option<u32> {
    let c = std::ffi::CString::new(name).ok()?;
    // SAFETY: c is a valid NUL-terminated string for the call.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (i != 0).then_some(i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(kind: u16, value: &[u8]) -> Vec<u8> {
        let mut a = Vec::new();
        a.extend_from_slice(&((4 + value.len()) as u16).to_ne_bytes());
        a.extend_from_slice(&kind.to_ne_bytes());
        a.extend_from_slice(value);
        while a.len() % 4 != 0 {
            a.push(0);
        }
        a
    }

    fn socket_msg(inode: u32, ifindex: u32, queue: u32, stats: [u64; 6]) -> Vec<u8> {
        let mut body = vec![AF_XDP, 3, 0, 0];
        body.extend_from_slice(&inode.to_ne_bytes());
        body.extend_from_slice(&[0; 8]);
        let mut info = ifindex.to_ne_bytes().to_vec();
        info.extend_from_slice(&queue.to_ne_bytes());
        body.extend(attr(XDP_DIAG_INFO, &info));
        body.extend(attr(2, &[0; 4])); // XDP_DIAG_UID, skipped
        let s: Vec<u8> = stats.iter().flat_map(|v| v.to_ne_bytes()).collect();
        body.extend(attr(XDP_DIAG_STATS, &s));
        let mut m = ((NLMSG_HDR + body.len()) as u32).to_ne_bytes().to_vec();
        m.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
        m.extend_from_slice(&[0; 10]);
        m.extend(body);
        m
    }

    #[test]
    fn request_is_an_xdp_dump_with_info_and_stats() {
        let r = request(7);
        assert_eq!(r.len(), 36);
        assert_eq!(u32_at(&r, 0), Some(36));
        assert_eq!(u16_at(&r, 4), Some(20));
        assert_eq!(u16_at(&r, 6), Some(0x301));
        assert_eq!(u32_at(&r, 8), Some(7));
        assert_eq!(r[16], 44);
        assert_eq!(u32_at(&r, 24), Some(0x11));
    }

    #[test]
    fn a_dump_datagram_yields_each_socket_then_done() {
        let mut d = socket_msg(99, 5, 0, [1, 2, 3, 4, 5, 6]);
        d.extend(socket_msg(100, 6, 1, [0, 0, 171, 9, 0, 0]));
        let mut out = Vec::new();
        assert!(!parse(&d, &mut out).unwrap(), "no NLMSG_DONE yet");
        assert_eq!(out.len(), 2);
        assert_eq!(
            out[0],
            XskStats {
                ifindex: 5,
                queue_id: 0,
                inode: 99,
                rx_dropped: 1,
                rx_invalid: 2,
                rx_ring_full: 3,
                fill_ring_empty: 4,
                tx_invalid: 5,
                tx_ring_empty: 6,
            }
        );
        assert_eq!((out[1].queue_id, out[1].rx_ring_full), (1, 171));
        let mut done = 20u32.to_ne_bytes().to_vec();
        done.extend_from_slice(&NLMSG_DONE.to_ne_bytes());
        done.extend_from_slice(&[0; 14]);
        assert!(parse(&done, &mut out).unwrap());
    }

    #[test]
    fn a_truncated_message_is_an_error_not_a_panic() {
        let d = socket_msg(1, 1, 0, [0; 6]);
        let mut cut = d[..30].to_vec();
        cut[0..4].copy_from_slice(&100u32.to_ne_bytes());
        assert!(parse(&cut, &mut Vec::new()).is_err());
        // An attribute running past the end just stops the walk.
        let mut short = d.clone();
        short.truncate(d.len() - 8);
        let l = short.len() as u32;
        short[0..4].copy_from_slice(&l.to_ne_bytes());
        let mut out = Vec::new();
        parse(&short, &mut out).unwrap();
        assert_eq!(out[0].ifindex, 1);
    }

    #[test]
    fn this_process_has_no_xdp_socket() {
        // Needs no privilege: a dump of the namespace filtered to our (zero) sockets. Kernels
        // without xsk_diag answer with an error, which is fine here too.
        if let Ok(s) = xsk_stats() {
            assert!(s.is_empty(), "{s:?}");
        }
        assert_eq!(ifindex("lo"), Some(1));
    }
}

//! Which service ports this member actively listens on (CA7: "look for active listens on the
//! port"), read from the kernel's socket tables `/proc/net/{tcp,tcp6,udp,udp6}`.
//!
//! Each table line is
//!
//! ```text
//!   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
//!    0: 0100007F:0CEA 00000000:0000 0A 00000000:00000000 00:00000000 00000000   116        0 24601 ...
//! ```
//!
//! An address is printed as 32-bit words in the host's byte order (one word for IPv4, four for
//! IPv6), each as 8 hex digits; a port as 4 hex digits, most significant first. A TCP socket
//! listens when its state is `0A` (TCP_LISTEN); a UDP socket receives datagrams from anyone when it
//! is bound and not connected: state `07` (TCP_CLOSE) with a local port other than 0.
//!
//! [`listening_ports`] then keeps the sockets a connection to an alias address would reach: bound
//! to the wildcard (`0.0.0.0`, or `::`, which takes IPv4 too unless IPV6_V6ONLY is set; the table
//! does not show that flag, so such sockets are assumed to), or to the alias address itself (also
//! written `::ffff:a.b.c.d`).

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use clua_ctl::model::Proto;

/// A socket that accepts connections (TCP) or datagrams from anyone (UDP).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Listener {
    /// Its protocol.
    pub proto: Proto,
    /// The local address it is bound to (a wildcard for any).
    pub addr: IpAddr,
    /// The local port.
    pub port: u16,
}

/// A socket table line that is not in the kernel's format.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenError {
    /// 1-based line number in the table (the header is line 1).
    pub line: usize,
    /// What is wrong.
    pub what: String,
}

impl fmt::Display for ListenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "socket table line {}: {}", self.line, self.what)
    }
}

impl std::error::Error for ListenError {}

/// TCP_LISTEN.
const ST_LISTEN: u8 = 0x0A;
/// TCP_CLOSE: an unconnected UDP socket.
const ST_CLOSE: u8 = 0x07;

fn parse_addr(hex: &str, v6: bool) -> Option<IpAddr> {
    let words = if v6 { 4 } else { 1 };
    if hex.len() != 8 * words || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut bytes = [0u8; 16];
    for i in 0..words {
        let w = u32::from_str_radix(&hex[8 * i..8 * i + 8], 16).ok()?;
        bytes[4 * i..4 * i + 4].copy_from_slice(&w.to_ne_bytes());
    }
    Some(if v6 {
        IpAddr::V6(Ipv6Addr::from(bytes))
    } else {
        IpAddr::V4(Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]))
    })
}

fn parse_endpoint(s: &str, v6: bool) -> Option<(IpAddr, u16)> {
    let (a, p) = s.split_once(':')?;
    if p.len() != 4 {
        return None;
    }
    Some((parse_addr(a, v6)?, u16::from_str_radix(p, 16).ok()?))
}

/// Parses the text of `/proc/net/tcp` (`proto` TCP, `v6` false), `tcp6`, `udp` or `udp6` into
/// the sockets that listen (TCP, state `0A`) or are bound and unconnected (UDP, state `07`, port
/// not 0). The first line is the header; blank lines are ignored.
pub fn parse_proc_net(text: &str, proto: Proto, v6: bool) -> Result<Vec<Listener>, ListenError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let mut f = line.split_whitespace();
        let Some(sl) = f.next() else { continue };
        if i == 0 && sl == "sl" {
            continue;
        }
        let err = |what: String| ListenError { line: n, what };
        if !sl.ends_with(':') {
            return Err(err(format!("`{sl}` is not a slot number (`N:`)")));
        }
        let (Some(local), Some(_remote), Some(st)) = (f.next(), f.next(), f.next()) else {
            return Err(err("too few fields".into()));
        };
        let (addr, port) = parse_endpoint(local, v6).ok_or_else(|| {
            err(format!(
                "local address `{local}` is not {}:PORT in hex",
                if v6 { "32 hex digits" } else { "8 hex digits" }
            ))
        })?;
        let st = u8::from_str_radix(st, 16)
            .ok()
            .filter(|_| st.len() == 2)
            .ok_or_else(|| err(format!("state `{st}` is not two hex digits")))?;
        let keep = match proto {
            Proto::Tcp => st == ST_LISTEN,
            Proto::Udp => st == ST_CLOSE && port != 0,
        };
        if keep {
            out.push(Listener { proto, addr, port });
        }
    }
    Ok(out)
}

/// Whether a socket bound to `bound` accepts a connection addressed to `alias`.
fn reaches(bound: IpAddr, aliases: &[Ipv4Addr]) -> bool {
    match bound {
        IpAddr::V4(a) => a.is_unspecified() || aliases.contains(&a),
        IpAddr::V6(a) => {
            a.is_unspecified() || a.to_ipv4_mapped().is_some_and(|v4| aliases.contains(&v4))
        }
    }
}

/// The sorted, deduplicated (protocol, port) pairs on which a connection (TCP) or datagram
/// (UDP) addressed to one of `aliases` would be accepted: sockets bound to a wildcard or to an
/// alias address. Sockets bound to other addresses (127.0.0.1, the member's own address) do not
/// count.
pub fn listening_ports(listeners: &[Listener], aliases: &[Ipv4Addr]) -> Vec<(Proto, u16)> {
    let mut v: Vec<(Proto, u16)> = listeners
        .iter()
        .filter(|l| reaches(l.addr, aliases))
        .map(|l| (l.proto, l.port))
        .collect();
    v.sort_unstable_by_key(|&(p, port)| (p.number(), port));
    v.dedup();
    v
}

/// Reads `/proc/net/{tcp,udp,tcp6,udp6}` and returns [`listening_ports`] for `aliases`. A missing
/// IPv6 table means the kernel has no IPv6 and is not an error; a missing IPv4 table is.
pub fn read_listening_ports(aliases: &[Ipv4Addr]) -> io::Result<Vec<(Proto, u16)>> {
    read_listening_ports_in(std::path::Path::new("/proc/net"), aliases)
}

/// [`read_listening_ports`] over the tables in `dir` (for tests).
pub fn read_listening_ports_in(
    dir: &std::path::Path,
    aliases: &[Ipv4Addr],
) -> io::Result<Vec<(Proto, u16)>> {
    let mut all = Vec::new();
    for (file, proto, v6) in [
        ("tcp", Proto::Tcp, false),
        ("udp", Proto::Udp, false),
        ("tcp6", Proto::Tcp, true),
        ("udp6", Proto::Udp, true),
    ] {
        let path = dir.join(file);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if v6 && e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("reading {}: {e}", path.display()),
                ))
            }
        };
        let l = parse_proc_net(&text, proto, v6).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        })?;
        all.extend(l);
    }
    Ok(listening_ports(&all, aliases))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALIAS: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 100);

    /// Hex of an IPv4 address as the kernel prints it on this host.
    fn h4(a: Ipv4Addr) -> String {
        format!("{:08X}", u32::from_ne_bytes(a.octets()))
    }

    /// Hex of an IPv6 address as the kernel prints it on this host.
    fn h6(a: Ipv6Addr) -> String {
        a.octets()
            .chunks(4)
            .map(|c| format!("{:08X}", u32::from_ne_bytes([c[0], c[1], c[2], c[3]])))
            .collect()
    }

    const TCP_HDR: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n";

    #[cfg(target_endian = "little")]
    #[test]
    fn kernel_sample_x86() {
        // As printed on x86: 127.0.0.1 is 0100007F, 198.51.100.100 is 646433C6.
        let tcp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:0CEA 00000000:0000 0A 00000000:00000000 00:00000000 00000000   116        0 24601 1 0000000000000000 100 0 0 10 0
   1: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 19876 1 0000000000000000 100 0 0 10 0
   2: 646433C6:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 31337 1 0000000000000000 100 0 0 10 0
   3: 646433C6:0050 0A0213CB:C350 01 00000000:00000000 02:000A7D1D 00000000     0        0 31340 2 0000000000000000 20 4 30 10 -1
   4: 8D0200C0:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 31338 1 0000000000000000 100 0 0 10 0
";
        let l = parse_proc_net(tcp, Proto::Tcp, false).unwrap();
        assert_eq!(
            l,
            vec![
                Listener {
                    proto: Proto::Tcp,
                    addr: Ipv4Addr::LOCALHOST.into(),
                    port: 3306
                },
                Listener {
                    proto: Proto::Tcp,
                    addr: Ipv4Addr::UNSPECIFIED.into(),
                    port: 22
                },
                Listener {
                    proto: Proto::Tcp,
                    addr: ALIAS.into(),
                    port: 80
                },
                Listener {
                    proto: Proto::Tcp,
                    addr: Ipv4Addr::new(192, 0, 2, 141).into(),
                    port: 8080
                },
            ],
            "the established connection (st 01) is not a listener"
        );
        // localhost and the member's own address do not count; wildcard and alias do.
        assert_eq!(
            listening_ports(&l, &[ALIAS]),
            vec![(Proto::Tcp, 22), (Proto::Tcp, 80)]
        );
        // The alias not joined: only the wildcard.
        assert_eq!(listening_ports(&l, &[]), vec![(Proto::Tcp, 22)]);

        let tcp6 = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:1F40 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0000000000000000 100 0 0 10 0
   1: 00000000000000000000000001000000:0019 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4243 1 0000000000000000 100 0 0 10 0
   2: 0000000000000000FFFF0000646433C6:01BB 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4244 1 0000000000000000 100 0 0 10 0
";
        let l6 = parse_proc_net(tcp6, Proto::Tcp, true).unwrap();
        assert_eq!(l6.len(), 3);
        assert_eq!(l6[1].addr, IpAddr::V6(Ipv6Addr::LOCALHOST));
        assert_eq!(l6[2].addr, IpAddr::V6(ALIAS.to_ipv6_mapped()));
        assert_eq!(
            listening_ports(&l6, &[ALIAS]),
            vec![(Proto::Tcp, 443), (Proto::Tcp, 8000)],
            "[::] takes IPv4; ::1 does not; ::ffff:alias is the alias"
        );

        let udp = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  100: 00000000:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 5001 2 0000000000000000 0
  101: 646433C6:0045 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 5002 2 0000000000000000 0
  102: 8D0200C0:D431 0A0213CB:0035 01 00000000:00000000 00:00000000 00000000     0        0 5003 2 0000000000000000 0
  103: 0100007F:0202 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 5004 2 0000000000000000 0
  104: 00000000:0000 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 5005 2 0000000000000000 0
";
        let lu = parse_proc_net(udp, Proto::Udp, false).unwrap();
        assert_eq!(
            lu.iter().map(|l| l.port).collect::<Vec<_>>(),
            vec![53, 69, 514],
            "connected (01) and unbound (port 0) sockets are left out"
        );
        let mut all = l;
        all.extend(l6);
        all.extend(lu.iter().copied());
        all.extend(lu); // duplicates collapse
        assert_eq!(
            listening_ports(&all, &[ALIAS]),
            vec![
                (Proto::Tcp, 22),
                (Proto::Tcp, 80),
                (Proto::Tcp, 443),
                (Proto::Tcp, 8000),
                (Proto::Udp, 53),
                (Proto::Udp, 69)
            ]
        );
    }

    #[test]
    fn portable_sample_and_errors() {
        let other = Ipv4Addr::new(198, 51, 100, 101);
        let text = format!(
            "{TCP_HDR}   0: {}:0050 00000000:0000 0A 0 0 0 0 0 0\n\n   1: {}:0051 00000000:0000 0A 0\n",
            h4(ALIAS),
            h4(other)
        );
        let l = parse_proc_net(&text, Proto::Tcp, false).unwrap();
        assert_eq!(listening_ports(&l, &[ALIAS]), vec![(Proto::Tcp, 80)]);
        assert_eq!(
            listening_ports(&l, &[ALIAS, other]),
            vec![(Proto::Tcp, 80), (Proto::Tcp, 81)]
        );
        let text6 = format!(
            "{TCP_HDR}   0: {}:0050 {}:0000 0A 0\n",
            h6(other.to_ipv6_mapped()),
            h6(Ipv6Addr::UNSPECIFIED)
        );
        let l6 = parse_proc_net(&text6, Proto::Udp, true).unwrap();
        assert!(l6.is_empty(), "UDP in state 0A is not a bound UDP socket");
        let l6 = parse_proc_net(&text6, Proto::Tcp, true).unwrap();
        assert_eq!(listening_ports(&l6, &[other]), vec![(Proto::Tcp, 80)]);

        let e = |t: &str, v6| parse_proc_net(t, Proto::Tcp, v6).unwrap_err().to_string();
        assert_eq!(
            e("   0: 0100007F:0CEA 00000000:0000", false),
            "socket table line 1: too few fields"
        );
        assert_eq!(
            e(
                &format!("{TCP_HDR}   0: 0100007F:CEA 00000000:0000 0A"),
                false
            ),
            "socket table line 2: local address `0100007F:CEA` is not 8 hex digits:PORT in hex"
        );
        assert_eq!(
            e(
                &format!("{TCP_HDR}   0: 0100007F:0CEA 00000000:0000 0A"),
                true
            ),
            "socket table line 2: local address `0100007F:0CEA` is not 32 hex digits:PORT in hex"
        );
        assert_eq!(
            e(
                &format!("{TCP_HDR}   0: 0100007F:0CEA 00000000:0000 XY"),
                false
            ),
            "socket table line 2: state `XY` is not two hex digits"
        );
        assert_eq!(
            e(
                &format!("{TCP_HDR}   x 0100007F:0CEA 00000000:0000 0A"),
                false
            ),
            "socket table line 2: `x` is not a slot number (`N:`)"
        );
    }

    #[test]
    fn read_from_a_directory_without_ipv6() {
        let dir = std::env::temp_dir().join(format!("clua-listen-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("tcp"),
            format!("{TCP_HDR}   0: {}:0050 00000000:0000 0A 0\n", h4(ALIAS)),
        )
        .unwrap();
        std::fs::write(
            dir.join("udp"),
            format!("{TCP_HDR}   0: 00000000:0035 00000000:0000 07 0\n"),
        )
        .unwrap();
        assert_eq!(
            read_listening_ports_in(&dir, &[ALIAS]).unwrap(),
            vec![(Proto::Tcp, 80), (Proto::Udp, 53)]
        );
        std::fs::remove_file(dir.join("udp")).unwrap();
        assert!(read_listening_ports_in(&dir, &[ALIAS]).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
        // The real tables parse.
        read_listening_ports(&[ALIAS]).unwrap();
    }
}

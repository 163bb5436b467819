//! The systemd notification protocol (sd_notify(3)) for `Type=notify` units: `READY=1` once the
//! daemon serves, `STATUS=` lines for `systemctl status`, `STOPPING=1` at SIGTERM and
//! `WATCHDOG=1` pings while the control loop runs (docs/systemd.md).
//!
//! Written over `std::os::unix::net::UnixDatagram` rather than with libsystemd or a crate: the
//! protocol is one datagram of `KEY=value` lines to the socket named by `NOTIFY_SOCKET`, and std
//! names abstract sockets (`@name`) through `SocketAddrExt::from_abstract_name`, so no `unsafe`
//! (no hand-built `sockaddr_un`) and no library is needed. Without `NOTIFY_SOCKET` (not started
//! by systemd, or `Type=simple`) nothing is sent and nothing is opened.
//!
//! This file is also compiled into the member agent (member/src/lib.rs includes it by path): the
//! agent links neither clua-lb nor DPDK, and the protocol is the same.

use std::fmt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::{Duration, Instant};

/// Why `NOTIFY_SOCKET` could not be used.
#[derive(Debug)]
pub enum NotifyError {
    /// The variable names neither a path (`/…`) nor an abstract socket (`@…`).
    BadAddress(String),
    /// Creating the datagram socket or naming the address failed.
    Socket(std::io::Error),
}

impl fmt::Display for NotifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotifyError::BadAddress(a) => {
                write!(f, "NOTIFY_SOCKET={a:?} is neither a path nor @abstract")
            }
            NotifyError::Socket(e) => write!(f, "notify socket: {e}"),
        }
    }
}

impl std::error::Error for NotifyError {}

/// The address in `NOTIFY_SOCKET`: a filesystem path, or `@name` for an abstract socket (the
/// kernel's name then starts with a NUL byte instead of the `@`).
pub fn notify_addr(value: &str) -> Result<SocketAddr, NotifyError> {
    if let Some(name) = value.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt;
        SocketAddr::from_abstract_name(name.as_bytes()).map_err(NotifyError::Socket)
    } else if value.starts_with('/') {
        SocketAddr::from_pathname(value).map_err(NotifyError::Socket)
    } else {
        Err(NotifyError::BadAddress(value.to_string()))
    }
}

/// How often to ping the watchdog: half of `WATCHDOG_USEC` (sd_watchdog_enabled(3)), or none when
/// the variable is unset, not a positive number, or `WATCHDOG_PID` names another process (a
/// child started by the daemon inherits the environment but is not the watched one).
pub fn watchdog_interval(usec: Option<&str>, pid: Option<&str>, ours: u32) -> Option<Duration> {
    let usec: u64 = usec?.trim().parse().ok().filter(|&u| u > 0)?;
    if let Some(p) = pid {
        if p.trim().parse::<u32>().ok()? != ours {
            return None;
        }
    }
    Some(Duration::from_micros(usec / 2))
}

/// One `STATUS=` line: a newline would start a new assignment, so it becomes a space.
pub fn status_line(status: &str) -> String {
    format!("STATUS={}", status.replace(['\n', '\r'], " "))
}

/// The datagram for readiness: `READY=1` and what the daemon serves.
pub fn ready_message(status: &str) -> String {
    format!("READY=1\n{}", status_line(status))
}

/// The datagram at SIGTERM: `STOPPING=1` and why.
pub fn stopping_message(status: &str) -> String {
    format!("STOPPING=1\n{}", status_line(status))
}

/// The service manager's notification socket and the watchdog schedule.
pub struct Notifier {
    sock: UnixDatagram,
    addr: SocketAddr,
    watchdog: Option<Duration>,
    last_ping: Option<Instant>,
}

impl Notifier {
    /// From the environment systemd sets: `Ok(None)` without `NOTIFY_SOCKET`.
    pub fn from_env() -> Result<Option<Notifier>, NotifyError> {
        let Some(value) = std::env::var_os("NOTIFY_SOCKET") else {
            return Ok(None);
        };
        let value = value.to_string_lossy();
        let addr = notify_addr(&value)?;
        let sock = UnixDatagram::unbound().map_err(NotifyError::Socket)?;
        let env = |k| std::env::var(k).ok();
        let watchdog = watchdog_interval(
            env("WATCHDOG_USEC").as_deref(),
            env("WATCHDOG_PID").as_deref(),
            std::process::id(),
        );
        Ok(Some(Notifier {
            sock,
            addr,
            watchdog,
            last_ping: None,
        }))
    }

    /// The ping interval, when systemd watches this process.
    pub fn watchdog(&self) -> Option<Duration> {
        self.watchdog
    }

    /// Sends one datagram. A manager that went away is not the daemon's problem: the error is
    /// returned for the caller to log, never fatal.
    pub fn send(&self, msg: &str) -> std::io::Result<()> {
        self.sock
            .send_to_addr(msg.as_bytes(), &self.addr)
            .map(|_| ())
    }

    /// `READY=1` with a status line; the watchdog schedule starts here.
    pub fn ready(&mut self, status: &str) -> std::io::Result<()> {
        self.last_ping = Some(Instant::now());
        self.send(&ready_message(status))
    }

    /// A new `STATUS=` line.
    pub fn status(&self, status: &str) -> std::io::Result<()> {
        self.send(&status_line(status))
    }

    /// `STOPPING=1`: systemd shows "deactivating" and stops expecting pings.
    pub fn stopping(&self, status: &str) -> std::io::Result<()> {
        self.send(&stopping_message(status))
    }

    /// Called on every round of the control loop: sends `WATCHDOG=1` when half the watchdog
    /// time passed since the last one, so a loop that stops coming round (a hung control
    /// thread) stops the pings and systemd kills and restarts the daemon. One clock read and a
    /// compare otherwise.
    pub fn tick(&mut self, now: Instant) {
        let Some(every) = self.watchdog else { return };
        if self
            .last_ping
            .is_some_and(|t| now.duration_since(t) < every)
        {
            return;
        }
        self.last_ping = Some(now);
        let _ = self.send("WATCHDOG=1");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watchdog_is_half_the_usec_and_only_for_our_pid() {
        assert_eq!(
            watchdog_interval(Some("200000"), None, 7),
            Some(Duration::from_millis(100))
        );
        assert_eq!(
            watchdog_interval(Some("200000"), Some("7"), 7),
            Some(Duration::from_millis(100))
        );
        assert_eq!(watchdog_interval(Some("200000"), Some("8"), 7), None);
        assert_eq!(watchdog_interval(Some("200000"), Some("x"), 7), None);
        assert_eq!(watchdog_interval(None, None, 7), None);
        assert_eq!(watchdog_interval(Some("0"), None, 7), None);
        assert_eq!(watchdog_interval(Some("-5"), None, 7), None);
    }

    #[test]
    fn messages_are_key_value_lines() {
        assert_eq!(
            ready_message("serving\ncluster"),
            "READY=1\nSTATUS=serving cluster"
        );
        assert_eq!(stopping_message("bye"), "STOPPING=1\nSTATUS=bye");
    }

    #[test]
    fn abstract_and_path_addresses() {
        use std::os::linux::net::SocketAddrExt;
        let a = notify_addr("@clua-test").unwrap();
        assert_eq!(a.as_abstract_name(), Some(&b"clua-test"[..]));
        let p = notify_addr("/run/systemd/notify").unwrap();
        assert_eq!(
            p.as_pathname(),
            Some(std::path::Path::new("/run/systemd/notify"))
        );
        assert!(matches!(
            notify_addr("relative"),
            Err(NotifyError::BadAddress(_))
        ));
    }

    #[test]
    fn pings_reach_an_abstract_socket_at_the_interval() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("clua-notify-unit-{}", std::process::id());
        let rx = UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(&name).unwrap()).unwrap();
        rx.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        let mut n = Notifier {
            sock: UnixDatagram::unbound().unwrap(),
            addr: notify_addr(&format!("@{name}")).unwrap(),
            watchdog: Some(Duration::from_millis(50)),
            last_ping: None,
        };
        let t0 = Instant::now();
        n.ready("up").unwrap();
        let mut buf = [0u8; 256];
        let len = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"READY=1\nSTATUS=up");
        // Too early: nothing; after the interval: one ping.
        n.tick(t0 + Duration::from_millis(10));
        n.tick(t0 + Duration::from_millis(60));
        n.tick(t0 + Duration::from_millis(70));
        let len = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"WATCHDOG=1");
        rx.set_nonblocking(true).unwrap();
        assert!(rx.recv(&mut buf).is_err(), "one ping per interval");
    }
}

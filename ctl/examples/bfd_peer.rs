//! A `clua_ctl::bfd::Bfd` speaker driven over stdin/stdout, for the BIRD interop lab
//! (`ctl/examples/bfd_interop.py`, docs/bfd.md): each stdin line is a received Ethernet frame
//! in hex, each stdout line a frame to send in hex. The line `shutdown` sends AdminDown and
//! exits; end of input exits without a word (like a crash). State changes go to stderr.
//!
//! ```text
//! bfd_peer LOCAL_MAC LOCAL_ADDR PEER_ADDR [SEED]
//! ```
//!
//! No I/O of its own beyond the pipes: the Python side owns the raw socket.

use std::io::{BufRead, Write};
use std::net::Ipv4Addr;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use clua_ctl::bfd::{Bfd, BfdPeer, BfdSettings};
use clua_ctl::plane::Transmit;

fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let v: Vec<u8> = s
        .split(':')
        .map(|p| u8::from_str_radix(p, 16))
        .collect::<Result<_, _>>()
        .ok()?;
    v.try_into().ok()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn emit(out: &mut impl Write, frames: Vec<Transmit>) {
    for t in frames {
        let hex: String = t.frame.iter().map(|b| format!("{b:02x}")).collect();
        let _ = writeln!(out, "{hex}");
    }
    let _ = out.flush();
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: bfd_peer LOCAL_MAC LOCAL_ADDR PEER_ADDR [SEED]";
    let (Some(mac), Some(local), Some(peer)) = (
        args.get(1).and_then(|s| parse_mac(s)),
        args.get(2).and_then(|s| s.parse::<Ipv4Addr>().ok()),
        args.get(3).and_then(|s| s.parse::<Ipv4Addr>().ok()),
    ) else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let seed = args
        .get(4)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x0c1a_bfd0);
    let settings = BfdSettings {
        peers: vec![BfdPeer {
            port: 0,
            local_mac: mac,
            local_addr: local,
            peer_addr: peer,
        }],
        ..BfdSettings::default()
    };
    let start = Instant::now();
    let now = || start.elapsed().as_millis() as u64;
    let mut bfd = Bfd::new(settings, seed, now());

    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut out = std::io::stdout().lock();
    loop {
        let wait = bfd.next_wakeup().saturating_sub(now()).clamp(1, 50);
        match rx.recv_timeout(Duration::from_millis(wait)) {
            Ok(line) if line.trim() == "shutdown" => {
                emit(&mut out, bfd.shutdown());
                for e in bfd.take_events() {
                    eprintln!(
                        "{} ms: {} {} -> {} ({})",
                        now(),
                        e.peer,
                        e.from,
                        e.to,
                        e.diag
                    );
                }
                return;
            }
            Ok(line) => {
                if let Some(frame) = unhex(line.trim()) {
                    let before = bfd.counters().refused;
                    let t = bfd.on_frame(0, &frame, now());
                    emit(&mut out, t);
                    for (i, (label, n)) in bfd.counters().refused_by_label().enumerate() {
                        if n != before[i] {
                            eprintln!("{} ms: refused: {label}", now());
                        }
                    }
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        let t = bfd.on_tick(now());
        emit(&mut out, t);
        for e in bfd.take_events() {
            eprintln!(
                "{} ms: {} {} -> {} ({})",
                now(),
                e.peer,
                e.from,
                e.to,
                e.diag
            );
            for s in bfd.sessions() {
                eprintln!(
                    "  session: state {} remote {} discr {:#x}/{:#x} tx {} ms detect {} ms",
                    s.state,
                    s.remote_state,
                    s.local_discr,
                    s.remote_discr,
                    s.tx_interval_ms,
                    s.detection_time_ms
                );
            }
        }
    }
}

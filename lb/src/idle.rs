//! How a worker waits when a poll of its ports found nothing (issue 12, `[dpdk] idle`).
//!
//! Polling flat out costs a whole core even when no packet comes; a fixed sleep after every
//! empty poll (the old `idle_sleep_us`) costs that sleep's latency on every packet of a
//! gap, even under load, and Linux's default 50 us timer slack makes a 20 us sleep ~85 us.
//! [`IdlePolicy::Adaptive`] backs off like DPDK's l3fwd-power (count empty polls, pause, then
//! sleep, reset on the first packet), with a bound on the sleep instead of RX interrupts
//! (which neither net_ring nor AF_XDP in copy mode give):
//!
//! 1. the first [`SPIN_POLLS`] empty polls poll again at once (a gap inside a burst train);
//! 2. the next [`PAUSE_POLLS`] pause [`PAUSES`] spin-loop hints after each poll (the core stays
//!    responsive within about a microsecond, and leaves the memory bus and an SMT sibling
//!    alone);
//! 3. then each empty poll sleeps, [`MIN_SLEEP_US`] first, doubling up to `max_sleep_us`: the
//!    wake-up bound. A packet that arrives during a sleep waits at most the sleep plus the
//!    timer's lateness, which the worker keeps small by lowering its timer slack to
//!    [`TIMER_SLACK_NS`] while it runs.
//!
//! Any poll that receives a packet resets the backoff to step 1, so a loaded worker polls
//! flat out and never sleeps; and a packet punted to the control thread (an ARP request)
//! leaves the worker polling while the control thread answers (worker 0 sends the reply).
//!
//! [`Backoff`] is the policy as a pure state machine (a poll's packet count in, how to wait
//! out), unit-tested below; [`Wait::perform`] is the only side effect. Everything else the
//! loop does between bursts (the stop flag and the snapshot every `SNAPSHOT_POLL` loops, the
//! hand-off walk and installs, parked fragments, injected frames) runs on every loop, sleeping
//! or not, so it goes on while idle, one loop per wake-up.

use std::time::Duration;

/// Empty polls that poll again without waiting (`Adaptive`, step 1).
pub const SPIN_POLLS: u32 = 32;

/// Empty polls after [`SPIN_POLLS`] that pause before the next poll (`Adaptive`, step 2).
pub const PAUSE_POLLS: u32 = 128;

/// Spin-loop hints (x86 `pause`, 10..140 cycles each by CPU model) per pausing poll.
pub const PAUSES: u32 = 16;

/// The first sleep of a backoff, in microseconds (`Adaptive`, step 3).
pub const MIN_SLEEP_US: u32 = 1;

/// `[dpdk] idle_max_sleep_us` when not set: see docs/aliasd.toml.md for why 100.
pub const DEFAULT_MAX_SLEEP_US: u32 = 100;

/// The largest `idle_max_sleep_us` and `idle_sleep_us` accepted (10 ms): beyond it a sleeping
/// worker would take seconds to see the stop flag (every `SNAPSHOT_POLL` loops).
pub const MAX_SLEEP_LIMIT_US: u32 = 10_000;

/// The timer slack a sleeping `Adaptive` worker runs with (1 us; Linux's default is 50 us).
pub const TIMER_SLACK_NS: u64 = 1_000;

/// What a worker does after a poll that received nothing (`[dpdk] idle`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdlePolicy {
    /// Poll flat out: a whole core, busy or not, no added latency (`idle = "poll"`).
    Poll,
    /// Sleep `us` microseconds after every empty poll (`idle = "sleep"`, the old
    /// `idle_sleep_us`), with the thread's timer slack as it is.
    Sleep {
        /// The sleep; 0 is [`IdlePolicy::Poll`].
        us: u32,
    },
    /// Back off: spin, pause, then sleep, doubling up to `max_sleep_us` (`idle =
    /// "adaptive"`, the default; see the module docs).
    Adaptive {
        /// The longest sleep: the bound on the wake-up latency (0: pause, never sleep).
        max_sleep_us: u32,
    },
}

impl Default for IdlePolicy {
    fn default() -> Self {
        IdlePolicy::Adaptive {
            max_sleep_us: DEFAULT_MAX_SLEEP_US,
        }
    }
}

impl IdlePolicy {
    /// The timer slack the worker should run with, if it should change it: only `Adaptive`
    /// sleeps against a bound (`Sleep` keeps the old behaviour, slack included).
    pub fn timer_slack_ns(self) -> Option<u64> {
        match self {
            IdlePolicy::Adaptive { max_sleep_us } if max_sleep_us > 0 => Some(TIMER_SLACK_NS),
            _ => None,
        }
    }
}

/// How to wait before the next poll.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    /// Poll again at once.
    None,
    /// This many spin-loop hints.
    Pause(u32),
    /// Sleep this many microseconds.
    Sleep(u32),
}

impl Wait {
    /// Waits (on the calling thread).
    #[inline]
    pub fn perform(self) {
        match self {
            Wait::None => {}
            Wait::Pause(n) => {
                for _ in 0..n {
                    std::hint::spin_loop();
                }
            }
            Wait::Sleep(us) => std::thread::sleep(Duration::from_micros(u64::from(us))),
        }
    }
}

/// A worker's backoff state: [`Backoff::after_poll`] once per loop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backoff {
    policy: IdlePolicy,
    /// Empty polls since the last packet (saturating).
    empty: u32,
    /// The last sleep of this backoff (0: none yet).
    sleep_us: u32,
}

impl Backoff {
    /// A backoff that starts busy (as after a packet).
    pub fn new(policy: IdlePolicy) -> Self {
        Backoff {
            policy,
            empty: 0,
            sleep_us: 0,
        }
    }

    /// The policy.
    pub fn policy(&self) -> IdlePolicy {
        self.policy
    }

    /// How to wait after a poll that received `received` packets.
    #[inline]
    pub fn after_poll(&mut self, received: usize) -> Wait {
        if received > 0 {
            self.empty = 0;
            self.sleep_us = 0;
            return Wait::None;
        }
        match self.policy {
            IdlePolicy::Poll | IdlePolicy::Sleep { us: 0 } => Wait::None,
            IdlePolicy::Sleep { us } => Wait::Sleep(us),
            IdlePolicy::Adaptive { max_sleep_us } => {
                self.empty = self.empty.saturating_add(1);
                if self.empty <= SPIN_POLLS {
                    Wait::None
                } else if self.empty <= SPIN_POLLS + PAUSE_POLLS || max_sleep_us == 0 {
                    Wait::Pause(PAUSES)
                } else {
                    self.sleep_us = if self.sleep_us == 0 {
                        MIN_SLEEP_US
                    } else {
                        self.sleep_us.saturating_mul(2)
                    }
                    .min(max_sleep_us);
                    Wait::Sleep(self.sleep_us)
                }
            }
        }
    }
}

/// Lowers the calling thread's timer slack while it lives and puts the old value back when
/// dropped (a DPDK lcore thread runs one worker after another in clua-bench).
#[derive(Debug)]
pub struct TimerSlack {
    before: u64,
}

impl TimerSlack {
    /// Sets the slack to `ns`; `None` if the kernel refused (the worker then sleeps longer
    /// than asked, as with `Sleep`).
    pub fn lower(ns: u64) -> Option<TimerSlack> {
        let before = clua_dpdk::timer_slack_ns().ok()?;
        clua_dpdk::set_timer_slack_ns(ns).ok()?;
        Some(TimerSlack { before })
    }
}

impl Drop for TimerSlack {
    fn drop(&mut self) {
        let _ = clua_dpdk::set_timer_slack_ns(self.before);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adaptive(max_sleep_us: u32) -> Backoff {
        Backoff::new(IdlePolicy::Adaptive { max_sleep_us })
    }

    /// `n` empty polls' waits.
    fn idle(b: &mut Backoff, n: u32) -> Vec<Wait> {
        (0..n).map(|_| b.after_poll(0)).collect()
    }

    #[test]
    fn adaptive_spins_then_pauses_then_sleeps_doubling_to_the_bound() {
        let mut b = adaptive(100);
        let waits = idle(&mut b, SPIN_POLLS + PAUSE_POLLS + 10);
        let (spin, rest) = waits.split_at(SPIN_POLLS as usize);
        let (pause, sleep) = rest.split_at(PAUSE_POLLS as usize);
        assert!(spin.iter().all(|w| *w == Wait::None), "{spin:?}");
        assert!(pause.iter().all(|w| *w == Wait::Pause(PAUSES)), "{pause:?}");
        let us: Vec<u32> = sleep
            .iter()
            .map(|w| match w {
                Wait::Sleep(us) => *us,
                other => panic!("{other:?} after the pauses"),
            })
            .collect();
        assert_eq!(us, [1, 2, 4, 8, 16, 32, 64, 100, 100, 100]);
    }

    #[test]
    fn the_bound_is_never_exceeded() {
        for max in [
            1,
            2,
            3,
            20,
            50,
            100,
            127,
            200,
            1000,
            MAX_SLEEP_LIMIT_US,
            u32::MAX,
        ] {
            let mut b = adaptive(max);
            let mut longest = 0;
            // Far past the doubling's overflow of u32, with traffic now and then.
            for i in 0..20_000u32 {
                match b.after_poll(usize::from(i % 5_000 == 4_999)) {
                    Wait::Sleep(us) => {
                        assert!(us <= max && us > 0, "slept {us} us with bound {max}");
                        longest = longest.max(us);
                    }
                    Wait::Pause(n) => assert_eq!(n, PAUSES),
                    Wait::None => {}
                }
            }
            assert_eq!(longest, max, "the backoff reaches the bound {max}");
        }
    }

    #[test]
    fn a_packet_resets_to_busy_polling_and_the_first_sleep() {
        let mut b = adaptive(200);
        idle(&mut b, SPIN_POLLS + PAUSE_POLLS + 50);
        assert_eq!(b.after_poll(0), Wait::Sleep(200));
        assert_eq!(b.after_poll(3), Wait::None);
        let again = idle(&mut b, SPIN_POLLS + PAUSE_POLLS + 2);
        assert!(again[..SPIN_POLLS as usize]
            .iter()
            .all(|w| *w == Wait::None));
        assert_eq!(again[SPIN_POLLS as usize], Wait::Pause(PAUSES));
        assert_eq!(again[again.len() - 2..], [Wait::Sleep(1), Wait::Sleep(2)]);
        // A packet during the pauses resets too.
        idle(&mut b, SPIN_POLLS + 5);
        assert_eq!(b.after_poll(1), Wait::None);
        assert_eq!(b, adaptive(200));
    }

    #[test]
    fn a_zero_bound_pauses_forever() {
        let mut b = adaptive(0);
        let waits = idle(&mut b, 10_000);
        assert!(waits[SPIN_POLLS as usize..]
            .iter()
            .all(|w| *w == Wait::Pause(PAUSES)));
        assert_eq!(
            IdlePolicy::Adaptive { max_sleep_us: 0 }.timer_slack_ns(),
            None
        );
    }

    #[test]
    fn poll_never_waits_and_sleep_always_sleeps_its_time() {
        let mut p = Backoff::new(IdlePolicy::Poll);
        assert!(idle(&mut p, 1000).iter().all(|w| *w == Wait::None));
        let mut s = Backoff::new(IdlePolicy::Sleep { us: 20 });
        assert!(idle(&mut s, 1000).iter().all(|w| *w == Wait::Sleep(20)));
        assert_eq!(s.after_poll(1), Wait::None);
        assert_eq!(s.after_poll(0), Wait::Sleep(20));
        let mut zero = Backoff::new(IdlePolicy::Sleep { us: 0 });
        assert!(idle(&mut zero, 100).iter().all(|w| *w == Wait::None));
        assert_eq!(IdlePolicy::Sleep { us: 20 }.timer_slack_ns(), None);
        assert_eq!(IdlePolicy::Poll.timer_slack_ns(), None);
    }

    #[test]
    fn the_default_is_adaptive_with_its_default_bound_and_low_slack() {
        assert_eq!(
            IdlePolicy::default(),
            IdlePolicy::Adaptive {
                max_sleep_us: DEFAULT_MAX_SLEEP_US
            }
        );
        assert_eq!(IdlePolicy::default().timer_slack_ns(), Some(TIMER_SLACK_NS));
    }

    #[test]
    fn timer_slack_is_lowered_then_put_back() {
        std::thread::spawn(|| {
            let before = clua_dpdk::timer_slack_ns().unwrap();
            let guard = TimerSlack::lower(TIMER_SLACK_NS).expect("prctl");
            assert_eq!(clua_dpdk::timer_slack_ns().unwrap(), TIMER_SLACK_NS);
            drop(guard);
            assert_eq!(clua_dpdk::timer_slack_ns().unwrap(), before);
        })
        .join()
        .unwrap();
    }
}

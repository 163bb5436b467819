//! Packets the workers hand to the control thread, one bounded queue per punt reason.
//!
//! One shared queue let a flood of one kind (member adverts, pings) fill it and starve ARP, so
//! the proxy-ARP master stopped answering (CA4). Here each [`PuntReason`] has its own lock-free
//! queue: a full queue drops only packets of its own kind, counted per reason and per core, and
//! the control thread drains the queues round-robin with a budget per reason, so one kind never
//! waits behind another.

use clua_pipeline::{CoreCounters, PuntReason};
use crossbeam_queue::ArrayQueue;

/// A packet for the control thread: where it came from and why the pipeline punted it.
#[derive(Debug)]
pub struct Punted<B> {
    /// Receiving port.
    pub port: u16,
    /// Why the pipeline punted it: which queue it travels in and what handles it.
    pub reason: PuntReason,
    /// The packet, unchanged.
    pub buf: B,
}

/// One bounded multi-producer queue per [`PuntReason`], shared by every worker (producers) and
/// the control thread (the consumer).
pub struct PuntQueues<B> {
    queues: [ArrayQueue<Punted<B>>; PuntReason::COUNT],
}

impl<B> std::fmt::Debug for PuntQueues<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("PuntQueues");
        for r in PuntReason::ALL {
            d.field(r.name(), &self.len(r));
        }
        d.finish()
    }
}

impl<B> Default for PuntQueues<B> {
    fn default() -> Self {
        PuntQueues::new(Self::DEFAULT_CAPACITY)
    }
}

impl<B> PuntQueues<B> {
    /// Packets each queue holds by default (`[control] punt_queue`).
    pub const DEFAULT_CAPACITY: usize = 1024;
    /// The largest capacity [`PuntQueues::new`] allocates.
    pub const MAX_CAPACITY: usize = 1 << 20;
    /// Packets of each reason the control thread takes per round by default
    /// (see [`PuntQueues::drain`]).
    pub const DEFAULT_BUDGET: usize = 64;

    /// Queues holding `capacity` packets each (clamped to 1..=[`Self::MAX_CAPACITY`]). Allocates
    /// them all now; nothing allocates afterwards.
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.clamp(1, Self::MAX_CAPACITY);
        PuntQueues {
            queues: core::array::from_fn(|_| ArrayQueue::new(capacity)),
        }
    }

    /// Packets each queue holds.
    pub fn capacity(&self) -> usize {
        self.queues[0].capacity()
    }

    /// Queues `p` for the control thread. When the queue for its reason is full, `p` is dropped
    /// (freed) and counted in `counters` (per reason, and as `punt_queue_full`): returns
    /// `false`. Lock-free and allocation-free: called per punted packet by the workers.
    #[inline]
    pub fn push(&self, p: Punted<B>, counters: &CoreCounters) -> bool {
        let reason = p.reason;
        match self.queues[reason as usize].push(p) {
            Ok(()) => true,
            Err(p) => {
                counters.punt_drop(reason);
                drop(p);
                false
            }
        }
    }

    /// Packets waiting with `reason`.
    pub fn len(&self, reason: PuntReason) -> usize {
        self.queues[reason as usize].len()
    }

    /// Whether no packet of any reason is waiting.
    pub fn is_empty(&self) -> bool {
        self.queues.iter().all(ArrayQueue::is_empty)
    }

    /// One round for the control thread: hands `f` at most `budget` packets of each reason,
    /// taking one of each reason in turn (ARP, ICMP echo, member advert, ARP, ...), so the
    /// first packet of every waiting kind comes out within the first [`PuntReason::COUNT`], however
    /// many of another kind wait. Returns how many it handed over; call again while that is
    /// non-zero (between rounds the caller does its other work).
    pub fn drain(&self, budget: usize, mut f: impl FnMut(Punted<B>)) -> usize {
        let mut taken = 0;
        for _ in 0..budget {
            let mut any = false;
            for q in &self.queues {
                if let Some(p) = q.pop() {
                    f(p);
                    taken += 1;
                    any = true;
                }
            }
            if !any {
                break;
            }
        }
        taken
    }

    /// Drops every waiting packet (at shutdown, before the mempool goes). Returns how many.
    pub fn clear(&self) -> usize {
        let mut n = 0;
        for q in &self.queues {
            while let Some(p) = q.pop() {
                drop(p);
                n += 1;
            }
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clua_pipeline::DropReason;

    fn punt(reason: PuntReason, tag: u32) -> Punted<u32> {
        Punted {
            port: 0,
            reason,
            buf: tag,
        }
    }

    #[test]
    fn an_advert_flood_neither_delays_nor_drops_arp() {
        // CA4: the proxy-ARP master answers ARP however many adverts are queued.
        let q = PuntQueues::new(1024);
        let counters = CoreCounters::new(1);
        let mut accepted = 0;
        for i in 0..10_000 {
            accepted += usize::from(q.push(punt(PuntReason::MemberAdvert, i), &counters));
        }
        assert_eq!(accepted, 1024);
        assert!(
            q.push(punt(PuntReason::Arp, 1), &counters),
            "ARP has its own room"
        );
        assert_eq!(
            counters.punt_dropped_for(PuntReason::MemberAdvert),
            10_000 - 1024
        );
        assert_eq!(counters.punt_dropped_for(PuntReason::Arp), 0);
        assert_eq!(counters.punt_dropped_for(PuntReason::IcmpEcho), 0);
        assert_eq!(
            counters.drops_for(DropReason::PuntQueueFull),
            10_000 - 1024,
            "the total counts each drop once"
        );

        let mut round = Vec::new();
        let n = q.drain(PuntQueues::<u32>::DEFAULT_BUDGET, |p| {
            round.push((p.reason, p.buf))
        });
        assert_eq!(n, round.len());
        let arp_at = round
            .iter()
            .position(|&(r, _)| r == PuntReason::Arp)
            .expect("ARP comes out in the first round");
        assert!(arp_at < PuntReason::COUNT, "ARP came out at {arp_at}");
        let adverts = round
            .iter()
            .filter(|&&(r, _)| r == PuntReason::MemberAdvert)
            .count();
        assert_eq!(
            adverts,
            PuntQueues::<u32>::DEFAULT_BUDGET,
            "the round's budget"
        );
        assert_eq!(n, adverts + 1);
        let tags: Vec<u32> = round
            .iter()
            .filter(|&&(r, _)| r == PuntReason::MemberAdvert)
            .map(|&(_, t)| t)
            .collect();
        assert_eq!(tags, (0..64).collect::<Vec<_>>(), "oldest first, in order");
        assert_eq!(q.len(PuntReason::MemberAdvert), 1024 - 64);
    }

    #[test]
    fn rounds_interleave_reasons_and_end_when_empty() {
        let q = PuntQueues::new(8);
        let counters = CoreCounters::new(1);
        for i in 0..3 {
            q.push(punt(PuntReason::IcmpEcho, i), &counters);
        }
        q.push(punt(PuntReason::Arp, 10), &counters);
        q.push(punt(PuntReason::Arp, 11), &counters);
        let mut order = Vec::new();
        assert_eq!(q.drain(2, |p| order.push(p.buf)), 4);
        assert_eq!(order, vec![10, 0, 11, 1], "one of each reason in turn");
        order.clear();
        assert_eq!(q.drain(2, |p| order.push(p.buf)), 1);
        assert_eq!(order, vec![2]);
        assert_eq!(q.drain(2, |_| ()), 0);
        assert!(q.is_empty());
    }

    #[test]
    fn capacity_is_per_reason_and_clamped() {
        let q: PuntQueues<u32> = PuntQueues::new(0);
        assert_eq!(q.capacity(), 1);
        let counters = CoreCounters::new(1);
        for r in PuntReason::ALL {
            assert!(q.push(punt(r, 0), &counters));
            assert!(!q.push(punt(r, 1), &counters));
        }
        for r in PuntReason::ALL {
            assert_eq!(counters.punt_dropped_for(r), 1, "{r:?}");
        }
        let n = PuntReason::COUNT as u64;
        assert_eq!(counters.drops_for(DropReason::PuntQueueFull), n);
        assert_eq!(q.clear(), n as usize);
        assert!(q.is_empty());
        assert_eq!(
            PuntQueues::<u32>::default().capacity(),
            PuntQueues::<u32>::DEFAULT_CAPACITY
        );
    }
}

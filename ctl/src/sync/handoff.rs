//! The hand-off state machine (issue 9; docs/sync-protocol.md), sans I/O: records in, signed
//! datagrams out on the sending router; datagrams in, records of this router's member ids out
//! on the receiving one.
//!
//! Invariants:
//! - **Bounded.** A token bucket of `max_records_per_sec` (a burst of a tenth of a second, at
//!   least one datagram's worth) admits records; what it does not admit is dropped and counted
//!   (`rate_limited`), never queued: a flood of new flows must not flood the interconnect, and a
//!   dropped record is sent again by the next refresh walk of its table.
//! - **Batched.** Admitted records wait for a datagram to fill; a datagram that is not full goes
//!   at the latest [`FLUSH_MS`] after its first record, so a hand-off is at most that late.
//! - **Authenticated like the router protocol.** The router protocol's key signs every message;
//!   a receiver accepts only authentic ones, fresh by a replay window per sender (node, boot id,
//!   [`ReplayWindow`]), never its own node's. A forged record is never installed.
//! - **Members by address.** On the wire a member is its interconnect address; a record naming a
//!   member the receiver does not know is dropped and counted (`unknown_member`), the others of
//!   its message are kept.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use clua_pipeline::handoff::FlowRecord;
use clua_pipeline::hash::FlowKey;
use clua_pipeline::MemberId;

use super::wire::{records_per_message, SyncError, SyncKind, SyncRecord, SyncRepr};
use super::SyncSettings;
use crate::signed::{Freshness, ReplayWindow};

/// The longest a record waits in a datagram that is not full.
pub const FLUSH_MS: u64 = 10;

/// Counters of the flow hand-off.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncCounters {
    /// Flow messages sent.
    pub messages_sent: u64,
    /// Records sent in them.
    pub records_sent: u64,
    /// Whole-table requests sent.
    pub requests_sent: u64,
    /// Records the token bucket refused (dropped, not sent).
    pub rate_limited: u64,
    /// Records from this router's workers naming a member id its snapshot does not have (the
    /// member went between the worker's burst and the hand-off): dropped.
    pub unmapped: u64,
    /// Authentic, fresh flow messages received.
    pub messages_received: u64,
    /// Records in them.
    pub records_received: u64,
    /// Records handed to the workers to install.
    pub records_installed: u64,
    /// Records naming a member (address) this router does not know: dropped.
    pub unknown_member: u64,
    /// Authentic, fresh whole-table requests received.
    pub requests_received: u64,
    /// Messages refused by the wire checks, by [`SyncError`] index (`bad_tag`: forged or
    /// another key).
    pub refused: [u64; SyncError::COUNT],
    /// Authentic messages refused as replays.
    pub replayed: u64,
    /// Authentic messages from an older boot of their sender than one already seen.
    pub stale_boot: u64,
    /// Messages carrying this router's own node name.
    pub own_name: u64,
}

impl SyncCounters {
    /// Every refusal label with its count (the wire's, then `replayed`, `stale_boot`,
    /// `own_name`).
    pub fn refusals(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        SyncError::ALL
            .iter()
            .map(|e| (e.name(), self.refused[e.index()]))
            .chain([
                ("replayed", self.replayed),
                ("stale_boot", self.stale_boot),
                ("own_name", self.own_name),
            ])
    }

    /// Every dropped-record label with its count.
    pub fn record_drops(&self) -> [(&'static str, u64); 3] {
        [
            ("rate_limit", self.rate_limited),
            ("unknown_member", self.unknown_member),
            ("unmapped", self.unmapped),
        ]
    }
}

/// What a received datagram was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Received {
    /// Flow records: this many were appended to the caller's list.
    Flows(usize),
    /// A starting peer asks for this router's whole table.
    Request,
    /// Refused (counted).
    Refused,
}

/// The admission of records within `max_records_per_sec`, in thousandths of a record.
#[derive(Clone, Copy, Debug)]
struct TokenBucket {
    milli: u64,
    cap_milli: u64,
    per_ms_milli: u64,
    at_ms: u64,
}

impl TokenBucket {
    fn new(per_sec: u32, min_burst: usize, now_ms: u64) -> TokenBucket {
        let burst = (u64::from(per_sec) / 10).max(min_burst as u64);
        let cap_milli = if per_sec == 0 { 0 } else { burst * 1000 };
        TokenBucket {
            milli: cap_milli,
            cap_milli,
            // Records per second are thousandths of a record per millisecond.
            per_ms_milli: u64::from(per_sec),
            at_ms: now_ms,
        }
    }

    /// How many of `want` records may go at `now_ms` (taken from the bucket).
    fn take(&mut self, want: usize, now_ms: u64) -> usize {
        if now_ms > self.at_ms {
            let gain = (now_ms - self.at_ms).saturating_mul(self.per_ms_milli);
            self.milli = self.milli.saturating_add(gain).min(self.cap_milli);
            self.at_ms = now_ms;
        }
        let n = (self.milli / 1000).min(want as u64);
        self.milli -= n * 1000;
        n as usize
    }
}

/// One router's side of the hand-off. See the module docs.
#[derive(Debug)]
pub struct Handoff {
    settings: SyncSettings,
    node: String,
    key: Vec<u8>,
    boot_id: u64,
    seq: u64,
    per_message: usize,
    pending: Vec<SyncRecord>,
    /// When the first record of `pending` came.
    pending_since: u64,
    bucket: TokenBucket,
    /// Replay state per sender node, kept for as long as this router runs.
    replay: BTreeMap<String, ReplayWindow>,
    counters: SyncCounters,
}

impl Handoff {
    /// The hand-off of router `node` (boot `boot_id`, the router protocol's `key`) on an
    /// interconnect of `mtu` bytes, at `now_ms`.
    pub fn new(
        settings: SyncSettings,
        node: String,
        key: Vec<u8>,
        boot_id: u64,
        mtu: usize,
        now_ms: u64,
    ) -> Handoff {
        let per_message = records_per_message(mtu);
        Handoff {
            bucket: TokenBucket::new(settings.max_records_per_sec, per_message, now_ms),
            settings,
            node,
            key,
            boot_id,
            seq: 0,
            per_message,
            pending: Vec::with_capacity(per_message),
            pending_since: 0,
            replay: BTreeMap::new(),
            counters: SyncCounters::default(),
        }
    }

    /// The settings.
    pub fn settings(&self) -> &SyncSettings {
        &self.settings
    }

    /// The counters.
    pub fn counters(&self) -> &SyncCounters {
        &self.counters
    }

    /// Records per datagram on this interconnect.
    pub fn records_per_message(&self) -> usize {
        self.per_message
    }

    /// Records admitted and not sent yet.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// When the batch in progress must go ([`Handoff::flush`]), if there is one.
    pub fn next_flush(&self) -> Option<u64> {
        (!self.pending.is_empty()).then_some(self.pending_since + FLUSH_MS)
    }

    fn sign(&mut self, kind: SyncKind, records: Vec<SyncRecord>) -> Option<Vec<u8>> {
        self.seq += 1;
        let repr = SyncRepr {
            kind,
            node: self.node.clone(),
            boot_id: self.boot_id,
            seq: self.seq,
            records,
        };
        // The router protocol validated node and key at start, and records are checked as they
        // are admitted: a refusal here is a bug, not an input, and the batch is lost.
        repr.emit_signed(&self.key).ok()
    }

    fn send_pending(&mut self, out: &mut Vec<Vec<u8>>) {
        let n = self.pending.len() as u64;
        let records = std::mem::replace(&mut self.pending, Vec::with_capacity(self.per_message));
        if let Some(b) = self.sign(SyncKind::Flows, records) {
            self.counters.messages_sent += 1;
            self.counters.records_sent += n;
            out.push(b);
        }
    }

    /// Records from this router's workers at `now_ms`, in its member ids (`address` gives a
    /// member's interconnect address). Admitted ones join the batch; every datagram that fills
    /// is appended to `out` (signed UDP payloads), and so is the batch if it is due.
    pub fn offer(
        &mut self,
        records: &[FlowRecord],
        address: impl Fn(MemberId) -> Option<Ipv4Addr>,
        now_ms: u64,
        out: &mut Vec<Vec<u8>>,
    ) {
        let admitted = self.bucket.take(records.len(), now_ms);
        self.counters.rate_limited += (records.len() - admitted) as u64;
        for r in &records[..admitted] {
            let rec = address(r.member).map(|member| SyncRecord {
                proto: r.key.proto,
                client: Ipv4Addr::from(r.key.src),
                client_port: r.key.src_port,
                alias: Ipv4Addr::from(r.key.dst),
                alias_port: r.key.dst_port,
                state: r.state,
                member,
                isn: r.isn,
                remaining_ms: r.remaining_ms,
            });
            match rec {
                Some(rec) if rec.check().is_ok() => {
                    if self.pending.is_empty() {
                        self.pending_since = now_ms;
                    }
                    self.pending.push(rec);
                    if self.pending.len() >= self.per_message {
                        self.send_pending(out);
                    }
                }
                _ => self.counters.unmapped += 1,
            }
        }
        self.flush(now_ms, out);
    }

    /// The batch in progress, if it waited [`FLUSH_MS`] by `now_ms`.
    pub fn flush(&mut self, now_ms: u64, out: &mut Vec<Vec<u8>>) {
        if self.next_flush().is_some_and(|t| now_ms >= t) {
            self.send_pending(out);
        }
    }

    /// The batch in progress at once, due or not (a clean shutdown).
    pub fn flush_all(&mut self, out: &mut Vec<Vec<u8>>) {
        if !self.pending.is_empty() {
            self.send_pending(out);
        }
    }

    /// A whole-table request (signed UDP payload): this router is starting.
    pub fn request(&mut self) -> Option<Vec<u8>> {
        let b = self.sign(SyncKind::Request, Vec::new())?;
        self.counters.requests_sent += 1;
        Some(b)
    }

    /// A hand-off datagram (the UDP payload) received at `now_ms`: its records, in this
    /// router's member ids (`member` maps an interconnect address to one), are appended to
    /// `install`.
    pub fn on_datagram(
        &mut self,
        bytes: &[u8],
        member: impl Fn(Ipv4Addr) -> Option<MemberId>,
        install: &mut Vec<FlowRecord>,
    ) -> Received {
        let repr = match SyncRepr::parse_verified(bytes, &self.key) {
            Ok(r) => r,
            Err(e) => {
                self.on_refused(e);
                return Received::Refused;
            }
        };
        if repr.node == self.node {
            self.counters.own_name += 1;
            return Received::Refused;
        }
        match ReplayWindow::check(self.replay.get(&repr.node).copied(), repr.boot_id, repr.seq) {
            Ok(w) => {
                self.replay.insert(repr.node, w);
            }
            Err(Freshness::StaleBoot) => {
                self.counters.stale_boot += 1;
                return Received::Refused;
            }
            Err(_) => {
                self.counters.replayed += 1;
                return Received::Refused;
            }
        }
        if repr.kind == SyncKind::Request {
            self.counters.requests_received += 1;
            return Received::Request;
        }
        self.counters.messages_received += 1;
        self.counters.records_received += repr.records.len() as u64;
        let before = install.len();
        for r in &repr.records {
            let Some(id) = member(r.member) else {
                self.counters.unknown_member += 1;
                continue;
            };
            install.push(FlowRecord {
                key: FlowKey {
                    src: u32::from(r.client),
                    dst: u32::from(r.alias),
                    src_port: r.client_port,
                    dst_port: r.alias_port,
                    proto: r.proto,
                },
                member: id,
                state: r.state,
                isn: r.isn,
                remaining_ms: r.remaining_ms,
            });
        }
        let n = install.len() - before;
        self.counters.records_installed += n as u64;
        Received::Flows(n)
    }

    /// Counts a datagram refused before it reached [`Handoff::on_datagram`] (its frame).
    pub fn on_refused(&mut self, e: SyncError) {
        self.counters.refused[e.index()] += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clua_pipeline::conntrack::FlowState;

    const KEY: &[u8] = b"handoff test key 0123456789";

    fn handoff(node: &str, per_sec: u32) -> Handoff {
        let settings = SyncSettings {
            max_records_per_sec: per_sec,
            ..SyncSettings::default()
        };
        Handoff::new(settings, node.into(), KEY.to_vec(), 1, 1500, 0)
    }

    fn record(i: u32, member: u32) -> FlowRecord {
        FlowRecord {
            key: FlowKey {
                src: 0xcb00_7100 + i,
                dst: 0xc633_6464,
                src_port: 1024 + i as u16,
                dst_port: 80,
                proto: 6,
            },
            member: MemberId(member),
            state: FlowState::Established,
            isn: i,
            remaining_ms: 1000 + i,
        }
    }

    fn addr_of(id: MemberId) -> Option<Ipv4Addr> {
        (id.0 < 3).then(|| Ipv4Addr::new(192, 0, 2, 11 + id.0 as u8))
    }

    #[test]
    fn records_are_batched_until_full_or_due() {
        let mut a = handoff("r1", 1_000_000);
        let mut out = Vec::new();
        let recs: Vec<_> = (0..50).map(|i| record(i, i % 3)).collect();
        a.offer(&recs[..47], addr_of, 0, &mut out);
        assert!(out.is_empty(), "47 of 48 wait");
        assert_eq!(a.next_flush(), Some(FLUSH_MS));
        a.offer(&recs[47..], addr_of, 5, &mut out);
        assert_eq!(out.len(), 1, "the 48th fills a datagram");
        assert_eq!(out[0].len(), super::super::wire::buffer_len(48));
        assert!(20 + 8 + out[0].len() <= 1500);
        assert_eq!(a.pending(), 2);
        // The two left wait for their own first record's 10 ms, not the first batch's.
        a.flush(FLUSH_MS + 4, &mut out);
        assert_eq!(out.len(), 1);
        a.flush(5 + FLUSH_MS, &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(a.counters().records_sent, 50);
        assert_eq!(a.counters().messages_sent, 2);
        assert_eq!(a.next_flush(), None);
    }

    #[test]
    fn the_token_bucket_bounds_records_per_second() {
        // 1000 records/s: a burst of 100, then one per millisecond.
        let mut a = handoff("r1", 1000);
        let mut out = Vec::new();
        let recs: Vec<_> = (0..300).map(|i| record(i, 0)).collect();
        a.offer(&recs, addr_of, 0, &mut out);
        assert_eq!(a.counters().rate_limited, 200);
        a.offer(&recs[..50], addr_of, 20, &mut out);
        assert_eq!(a.counters().rate_limited, 230, "20 ms bought 20 records");
        // A long pause refills only up to the burst.
        a.offer(&recs, addr_of, 60_000, &mut out);
        assert_eq!(a.counters().rate_limited, 430);
        a.flush(70_000, &mut out);
        assert_eq!(a.counters().records_sent, 220);
        // 0 records per second: nothing is sent.
        let mut z = handoff("r1", 0);
        z.offer(&recs[..5], addr_of, 1000, &mut out);
        assert_eq!(z.counters().rate_limited, 5);
    }

    #[test]
    fn records_of_unknown_member_ids_are_not_sent() {
        let mut a = handoff("r1", 1_000_000);
        let mut out = Vec::new();
        a.offer(&[record(1, 7), record(2, 1)], addr_of, 0, &mut out);
        assert_eq!((a.counters().unmapped, a.pending()), (1, 1));
    }

    #[test]
    fn the_receiver_maps_addresses_to_its_own_ids_and_refuses_replays() {
        let mut a = handoff("r1", 1_000_000);
        let mut b = handoff("r2", 1_000_000);
        let mut out = Vec::new();
        a.offer(&[record(1, 0), record(2, 2)], addr_of, 0, &mut out);
        a.flush(FLUSH_MS, &mut out);
        // r2 knows 192.0.2.11 as its member 5 and nothing of 192.0.2.13.
        let map = |a: Ipv4Addr| (a == Ipv4Addr::new(192, 0, 2, 11)).then_some(MemberId(5));
        let mut install = Vec::new();
        assert_eq!(
            b.on_datagram(&out[0], map, &mut install),
            Received::Flows(1)
        );
        assert_eq!(install[0].member, MemberId(5));
        assert_eq!(install[0].key, record(1, 0).key);
        assert_eq!((install[0].isn, install[0].remaining_ms), (1, 1001));
        assert_eq!(b.counters().unknown_member, 1);
        assert_eq!(b.on_datagram(&out[0], map, &mut install), Received::Refused);
        assert_eq!(b.counters().replayed, 1);
        // Its own messages are not taken.
        assert_eq!(a.on_datagram(&out[0], map, &mut install), Received::Refused);
        assert_eq!(a.counters().own_name, 1);
        // A request.
        let req = a.request().unwrap();
        assert_eq!(b.on_datagram(&req, map, &mut install), Received::Request);
        assert_eq!(b.counters().requests_received, 1);
        assert_eq!(install.len(), 1);
    }
}

//! What happens to each packet, and the per-core counters those outcomes bump.

use core::sync::atomic::{AtomicU64, Ordering};

use crate::snapshot::PortId;

/// The outcome of the pipeline for one packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Transmit the (rewritten) packet on this port.
    Forward(PortId),
    /// Free the packet; the reason has been counted.
    Drop(DropReason),
    /// Hand the packet, unchanged, to the control thread.
    Punt(PuntReason),
    /// An IPv4 fragment that arrived before its datagram's first fragment: the worker parks
    /// the buffer, unchanged, at this slot of its
    /// [`HeldFragments`](crate::fragments::HeldFragments) until
    /// [`Pipeline::release_held`](crate::Pipeline::release_held) hands it back with its final
    /// verdict (issue 10, [`crate::fragments`]).
    Hold(u16),
    /// An ICMP error about a TCP flow this core's table does not hold, with several workers
    /// (issue 12, [`PipelineConfig::icmp_errors_to_other_workers`](crate::PipelineConfig)):
    /// RSS hashes an ICMP error by its outer addresses, not by the flow it quotes, so the flow
    /// may be another worker's. The worker hands the packet, unchanged, to the next worker.
    ToWorker,
}

/// Why the control thread gets a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum PuntReason {
    /// An ARP packet (requests for alias addresses are answered by the proxy-ARP master, CA4).
    Arp = 0,
    /// An ICMP echo request to an alias or to one of the router's own addresses (CA7: ICMP is
    /// handled in alias context).
    IcmpEcho = 1,
    /// A member advert (issue 4): UDP to one of the router's own addresses on
    /// [`Snapshot::advert_port`](crate::Snapshot::advert_port), received on an interconnect
    /// port. The control thread authenticates it.
    MemberAdvert = 2,
    /// A router protocol message (issue 8, docs/router-protocol.md): UDP to
    /// [`ControlPorts::router`](crate::snapshot::ControlPorts::router), to one of the router's
    /// own addresses or broadcast, received on an interconnect port.
    Router = 3,
    /// RIPv2 (UDP 520, CA6) on a client port, to the router's address, broadcast or 224.0.0.9.
    Rip = 4,
    /// Single-hop BFD (UDP 3784, RFC 5881) on a client port, to the router's address.
    Bfd = 5,
    /// A flow hand-off message from a peer router (issue 9, docs/sync-protocol.md): UDP to
    /// [`ControlPorts::sync`](crate::snapshot::ControlPorts::sync), to one of the router's own
    /// addresses or broadcast, received on an interconnect port.
    Sync = 6,
    /// The answer to a health probe of a static member (issue 10, ctl::members::health): TCP
    /// to one of the router's own addresses, to a port in
    /// [`PROBE_PORTS`](crate::snapshot::PROBE_PORTS), received on an interconnect port.
    Probe = 7,
}

impl PuntReason {
    /// Number of variants, for counter arrays.
    pub const COUNT: usize = 8;
    /// Every variant, in counter-index order.
    pub const ALL: [PuntReason; Self::COUNT] = [
        PuntReason::Arp,
        PuntReason::IcmpEcho,
        PuntReason::MemberAdvert,
        PuntReason::Router,
        PuntReason::Rip,
        PuntReason::Bfd,
        PuntReason::Sync,
        PuntReason::Probe,
    ];
    /// The metric label.
    pub const fn name(self) -> &'static str {
        match self {
            PuntReason::Arp => "arp",
            PuntReason::IcmpEcho => "icmp_echo",
            PuntReason::MemberAdvert => "member_advert",
            PuntReason::Router => "router",
            PuntReason::Rip => "rip",
            PuntReason::Bfd => "bfd",
            PuntReason::Sync => "sync",
            PuntReason::Probe => "probe",
        }
    }
}

macro_rules! drop_reasons {
    ($($(#[$doc:meta])* $variant:ident = $name:literal,)*) => {
        /// Why a packet was dropped. Each reason indexes a per-core counter.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum DropReason {
            $($(#[$doc])* $variant,)*
        }

        impl DropReason {
            /// Every variant, in counter-index order.
            pub const ALL: &'static [DropReason] = &[$(DropReason::$variant,)*];
            /// Number of variants, for counter arrays.
            pub const COUNT: usize = Self::ALL.len();
            /// The metric label (snake_case).
            pub const fn name(self) -> &'static str {
                match self {
                    $(DropReason::$variant => $name,)*
                }
            }
        }
    };
}

drop_reasons! {
    /// Shorter than an Ethernet header, or than a header it claims to carry.
    Truncated = "truncated",
    /// An EtherType the router does not handle (IPv6, LLDP, ...), or a stacked VLAN tag.
    UnsupportedEthertype = "unsupported_ethertype",
    /// IPv4 header invalid: version, header length, total length or checksum.
    BadIpv4Header = "bad_ipv4_header",
    /// IPv4 to an address that is neither an alias nor one of the router's own.
    NotAlias = "not_alias",
    /// An IPv4 fragment that is not TCP or UDP to an alias (ICMP, or to a router address):
    /// nothing reassembles it here (issue 10 follows TCP and UDP fragments, see
    /// [`crate::fragments`]).
    Fragment = "fragment",
    /// A first fragment too short for its TCP or UDP header, or a TCP fragment at offset 8
    /// (RFC 1858 §4, overlapping the first one's header) (issue 10).
    FragmentMalformed = "fragment_malformed",
    /// A fragment of a new datagram whose fragment-table bucket is full of live datagrams
    /// (live ones are never evicted).
    FragmentTableFull = "fragment_table_full",
    /// A fragment that arrived before its datagram's first one, with every hold slot in use.
    FragmentHoldFull = "fragment_hold_full",
    /// A held fragment whose datagram's first fragment did not arrive in time.
    FragmentTimeout = "fragment_timeout",
    /// A held fragment freed unreleased: the worker stopped, or the slot it was given could
    /// not take it.
    FragmentFlushed = "fragment_flushed",
    /// A transport protocol that aliases do not carry (anything but TCP, UDP and ICMP).
    UnsupportedProtocol = "unsupported_protocol",
    /// A TCP or UDP header that is truncated or has an invalid length field.
    BadL4Header = "bad_l4_header",
    /// ICMP that is not handled in alias context.
    UnsupportedIcmp = "unsupported_icmp",
    /// An ICMP error to an alias (CA7, [`crate::icmp_error`]) whose quoted datagram is not a
    /// valid IPv4 header followed by 8 bytes of its transport header.
    IcmpErrorBadQuote = "icmp_error_bad_quote",
    /// An ICMP error to an alias that quotes a datagram not sent from that alias.
    IcmpErrorNotFromAlias = "icmp_error_not_from_alias",
    /// An ICMP error to an alias quoting a datagram of no flow the alias carries: not TCP or
    /// UDP, a non-first fragment, client port 0, an in_noalias port, or no member owns it.
    IcmpErrorUnknownFlow = "icmp_error_unknown_flow",
    /// An ICMP error to an alias over the per-core rate limit (`[limits] icmp_errors_per_sec`).
    IcmpErrorRateLimited = "icmp_error_rate_limited",
    /// The alias has no member that is up in any selp tier.
    NoMember = "no_member",
    /// The port is in_noalias (CA9) and the packet was not answered: a TCP RST, a sender that
    /// may not be answered, or over the per-core refusal rate limit.
    InNoalias = "in_noalias",
    /// Not enough headroom in the buffer for the encapsulation headers.
    NoHeadroom = "no_headroom",
    /// The encapsulated packet would exceed the egress port's MTU.
    TooBig = "too_big",
    /// The control thread's queue for the packet's punt reason was full (per reason in
    /// [`CoreCounters::punt_dropped`]).
    PuntQueueFull = "punt_queue_full",
    /// The egress port's transmit queue was full.
    TxFull = "tx_full",
    /// Received on a port the snapshot does not know, or addressed to another MAC.
    WrongPort = "wrong_port",
    /// ipip/vxlan out of a port that has neither an IPv4 address nor a `flow_source`.
    NoSourceAddress = "no_source_address",
    /// TCP or UDP from source port 0: reserved (RFC 6335 §6), and the source port of the
    /// connection table's sticky-affinity keys (issue 9), which no real flow may share.
    SourcePortZero = "source_port_zero",
}

/// Alias ids [`CoreCounters::new`] counts (the default `max_aliases`, CA1).
pub const DEFAULT_COUNTED_ALIASES: usize = 8;

/// Counters for one worker core. Only that core writes them (relaxed load + store, no atomic
/// read-modify-write on the hot path); anyone may read them at any time.
#[derive(Debug)]
pub struct CoreCounters {
    /// Packets received.
    pub rx: AtomicU64,
    /// Packets handed to a port for transmission (before the PMD accepted them), refusals
    /// included.
    pub forwarded: AtomicU64,
    /// Refusals sent: packets to an in_noalias port answered with a TCP RST or an ICMP port
    /// unreachable (see [`crate::refuse`]). Those not answered are counted in
    /// `drops[InNoalias]` (or `drops[NoHeadroom]`), so each in_noalias packet counts once.
    pub refusals_sent: AtomicU64,
    /// ICMP errors to an alias forwarded to the member owning the quoted flow (CA7,
    /// [`crate::icmp_error`]); each also counts in `forwarded` and `member_packets`.
    pub icmp_errors_forwarded: AtomicU64,
    /// ICMP errors this core handed to another worker ([`Verdict::ToWorker`]); the other
    /// worker counts them again as received.
    pub icmp_errors_handed: AtomicU64,
    /// Replies to members' out_alias connections steered to the member whose source-port
    /// range holds their destination port (CA9, [`crate::out_alias`]), past select.
    pub out_alias_steered: AtomicU64,
    /// Drops by reason, indexed by `DropReason as usize`.
    pub drops: [AtomicU64; DropReason::COUNT],
    /// Punts by reason, indexed by `PuntReason as usize`.
    pub punts: [AtomicU64; PuntReason::COUNT],
    /// Punted packets dropped because the control thread's queue for their reason was full,
    /// indexed by `PuntReason as usize` (each also counts in `drops[PuntQueueFull]`).
    pub punt_dropped: [AtomicU64; PuntReason::COUNT],
    /// Packets forwarded to each member, indexed by `MemberId`.
    pub member_packets: Box<[AtomicU64]>,
    /// New flows (connection-table inserts, or in_multi UDP datagrams) per member.
    pub member_flows: Box<[AtomicU64]>,
    /// Packets forwarded for each alias, indexed by `AliasId` (issue 11, `cluamgr -s`): one
    /// relaxed load + store per forwarded packet, like `member_packets`. Aliases past the
    /// array (see [`CoreCounters::with_aliases`]) are forwarded but not counted per alias.
    pub alias_packets: Box<[AtomicU64]>,
    /// New flows per alias, indexed by `AliasId` (same rule as `member_flows`).
    pub alias_flows: Box<[AtomicU64]>,
    /// Live connection-table entries (flows and sticky affinities) found by this core's last
    /// complete occupancy sweep ([`crate::Pipeline::sweep_occupancy`]): a relaxed store once
    /// per pass over the table, never per packet.
    pub conn_live: AtomicU64,
    /// This core's connection-table slots (stored once, when the pipeline is built).
    pub conn_capacity: AtomicU64,
    /// Complete occupancy sweeps done (tells a reader whether `conn_live` is fresh).
    pub conn_sweeps: AtomicU64,
    /// Connection-table hits.
    pub conn_hits: AtomicU64,
    /// Connection-table entries created.
    pub conn_inserts: AtomicU64,
    /// Live entries evicted because their bucket was full.
    pub conn_evictions: AtomicU64,
    /// IPv4 fragments held for their datagram's first fragment (issue 10); each later counts
    /// once more, as forwarded or as a drop, when released.
    pub frag_held: AtomicU64,
    /// Held fragments released to their member (after their first fragment arrived).
    pub frag_released: AtomicU64,
    /// Client SYNs forwarded without a connection-table entry: both candidate buckets were
    /// full of established and closing entries, which a half-open flow may not evict.
    pub syn_without_slot: AtomicU64,
    /// Flow records (issue 9 hand-off: flows that became established, and the entries of the
    /// periodic and requested table walks) this core handed to the control thread.
    pub handoff_emitted: AtomicU64,
    /// Flow records dropped because the control thread's hand-off ring from this core was
    /// full (the worker never waits for it).
    pub handoff_ring_full: AtomicU64,
    /// Handed-over flows this core installed in its table (new, or replacing an entry it
    /// opened mid-flow; [`ConnTable::install`](crate::conntrack::ConnTable::install)).
    pub handoff_installed: AtomicU64,
    /// Handed-over flows whose entry here already had their member (its expiry extended).
    pub handoff_refreshed: AtomicU64,
    /// Handed-over flows ignored because this core's entry for them names another member and
    /// stays (its SYN was seen here, or neither side saw it).
    pub handoff_kept: AtomicU64,
    /// Handed-over flows not installed: no slot (both buckets full of established and
    /// closing entries), or no time left.
    pub handoff_refused: AtomicU64,
    /// Handed-over flows the control thread dropped because this core's install ring was
    /// full. Written by the control thread (its only writer), not by the core.
    pub handoff_install_full: AtomicU64,
    /// Affinities another worker of this router wrote that this core took in (issue 12,
    /// [`ConnTable::adopt`](crate::conntrack::ConnTable::adopt)): new here, replacing an older
    /// one, or refreshing the same member.
    pub affinity_adopted: AtomicU64,
    /// Affinities from another worker ignored: this core's entry names another member and
    /// expires later (it is the newer).
    pub affinity_kept: AtomicU64,
    /// Affinities from another worker not installed: no slot, or no time left.
    pub affinity_refused: AtomicU64,
    /// Affinities from another worker the control thread dropped because this core's ring of
    /// them was full. Written by the control thread (its only writer), not by the core.
    pub affinity_ring_full: AtomicU64,
}

impl CoreCounters {
    /// Counters for up to `max_members` member ids and [`DEFAULT_COUNTED_ALIASES`] alias ids.
    pub fn new(max_members: usize) -> Self {
        Self::with_aliases(max_members, DEFAULT_COUNTED_ALIASES)
    }

    /// Counters for up to `max_members` member ids and `max_aliases` alias ids (aliasd passes
    /// the cluster's `max_aliases`: 16 bytes per alias and core).
    pub fn with_aliases(max_members: usize, max_aliases: usize) -> Self {
        let zeros = |n: usize| (0..n).map(|_| AtomicU64::new(0)).collect::<Box<[_]>>();
        CoreCounters {
            rx: AtomicU64::new(0),
            forwarded: AtomicU64::new(0),
            refusals_sent: AtomicU64::new(0),
            icmp_errors_forwarded: AtomicU64::new(0),
            icmp_errors_handed: AtomicU64::new(0),
            out_alias_steered: AtomicU64::new(0),
            drops: core::array::from_fn(|_| AtomicU64::new(0)),
            punts: core::array::from_fn(|_| AtomicU64::new(0)),
            punt_dropped: core::array::from_fn(|_| AtomicU64::new(0)),
            member_packets: zeros(max_members),
            member_flows: zeros(max_members),
            alias_packets: zeros(max_aliases),
            alias_flows: zeros(max_aliases),
            conn_live: AtomicU64::new(0),
            conn_capacity: AtomicU64::new(0),
            conn_sweeps: AtomicU64::new(0),
            conn_hits: AtomicU64::new(0),
            conn_inserts: AtomicU64::new(0),
            conn_evictions: AtomicU64::new(0),
            frag_held: AtomicU64::new(0),
            frag_released: AtomicU64::new(0),
            syn_without_slot: AtomicU64::new(0),
            handoff_emitted: AtomicU64::new(0),
            handoff_ring_full: AtomicU64::new(0),
            handoff_installed: AtomicU64::new(0),
            handoff_refreshed: AtomicU64::new(0),
            handoff_kept: AtomicU64::new(0),
            handoff_refused: AtomicU64::new(0),
            handoff_install_full: AtomicU64::new(0),
            affinity_adopted: AtomicU64::new(0),
            affinity_kept: AtomicU64::new(0),
            affinity_refused: AtomicU64::new(0),
            affinity_ring_full: AtomicU64::new(0),
        }
    }

    /// Adds `n` to a counter owned by this core.
    #[inline(always)]
    pub fn add(c: &AtomicU64, n: u64) {
        c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
    }

    /// Counts one drop.
    #[inline(always)]
    pub fn drop(&self, reason: DropReason) {
        Self::add(&self.drops[reason as usize], 1);
    }

    /// Reads a counter.
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }

    /// Drops for one reason.
    pub fn drops_for(&self, reason: DropReason) -> u64 {
        Self::get(&self.drops[reason as usize])
    }

    /// Counts one punted packet dropped on a full queue for `reason`: per reason and in the
    /// `PuntQueueFull` total.
    #[inline]
    pub fn punt_drop(&self, reason: PuntReason) {
        Self::add(&self.punt_dropped[reason as usize], 1);
        self.drop(DropReason::PuntQueueFull);
    }

    /// Punted packets dropped on a full queue for `reason`.
    pub fn punt_dropped_for(&self, reason: PuntReason) -> u64 {
        Self::get(&self.punt_dropped[reason as usize])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_reason_names_are_unique_and_indexed_in_order() {
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
        }
        let mut names: Vec<_> = DropReason::ALL.iter().map(|r| r.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), DropReason::COUNT);
    }

    #[test]
    fn counters_count() {
        let c = CoreCounters::new(4);
        c.drop(DropReason::Fragment);
        c.drop(DropReason::Fragment);
        CoreCounters::add(&c.member_flows[3], 5);
        assert_eq!(c.drops_for(DropReason::Fragment), 2);
        assert_eq!(c.drops_for(DropReason::Truncated), 0);
        assert_eq!(CoreCounters::get(&c.member_flows[3]), 5);
        c.punt_drop(PuntReason::MemberAdvert);
        assert_eq!(c.punt_dropped_for(PuntReason::MemberAdvert), 1);
        assert_eq!(c.punt_dropped_for(PuntReason::Arp), 0);
        assert_eq!(c.drops_for(DropReason::PuntQueueFull), 1);
    }
}

//! ICMP errors in alias context (CA7; seed 000 §6.6.5, 001 §6.12: "ICMP handled in alias
//! context").
//!
//! Members answer clients directly from the alias address (CA12), so the ICMP errors their
//! packets cause on the way to a client — above all *fragmentation needed* (RFC 1191 path-MTU
//! discovery) — are sent to the alias and arrive at an alias router. Without them a member never
//! lowers its path MTU and a bulk transfer through a hop with a smaller MTU stalls. This stage
//! hands each such error to the member that sent the offending packet:
//!
//! 1. **Classify** ([`quoted_flow`]): an ICMP destination unreachable (every code), time
//!    exceeded or parameter problem (RFC 1122 §3.2.2; [`icmpv4::is_error`]) to an alias quotes
//!    the offending datagram. The quote must be a valid IPv4 header (version 4, IHL ≥ 5) with at
//!    least 8 bytes of its transport header ([`QuotedPacket`]), else `icmp_error_bad_quote`; its
//!    source must be the alias the error was sent to, else `icmp_error_not_from_alias`; it must
//!    be TCP or UDP, not a non-first fragment, with neither port 0, else
//!    `icmp_error_unknown_flow`. The quoted `alias:port → client:port` reversed is the flow key
//!    of the client's own packets (`client:port → alias:port`), and classify returns that key,
//!    its hash and [`PacketMeta::icmp_error`], so that the rest of the pipeline treats the error
//!    as a packet of that flow.
//! 2. **Select** ([`select`] instead of [`Selector::select`]): the member that owns the flow,
//!    found without writing anything — no connection-table entry, no affinity, no round-robin
//!    cursor moves:
//!    - TCP: the connection-table entry of the flow, if its member is up;
//!    - otherwise the choice a packet of the flow that misses the table would get (a TCP non-SYN
//!      miss, see [`crate::select`]): the client's wildcard affinity when the snapshot has a
//!      wildcard_sticky port; in_single: the port's active member; in_multi `wrr` and
//!      `weighted`: the port schedule's Maglev table of the flow under the fixed key; `sticky`:
//!      the client's affinity, else the Maglev table of the client address; `wildcard_sticky`:
//!      the Maglev table of the client address.
//!    - **in_multi `wrr` UDP** is balanced per datagram (seed 002), so no member owns its flow;
//!      the error goes to the Maglev choice of the flow, as for `weighted` — one member, fixed for
//!      the 5-tuple, which a forged error cannot change. That member (and only it) lowers its
//!      path MTU to the client; the others learn from the errors their own datagrams cause.
//!    - An in_noalias port (the router itself answers there) or no member →
//!      `icmp_error_unknown_flow`.
//! 3. **Rate limit**: each core forwards at most `icmp_errors_per_sec` errors a second, with a
//!    burst of the same (a token bucket, [`RefusalLimiter`]); a token is taken only by an error
//!    that would be forwarded, so junk cannot starve real errors of tokens. Over the limit →
//!    `icmp_error_rate_limited`.
//! 4. **Encap** as any packet of the flow (`l2`, `ipip`, `vxlan`; [`crate::encap`]); counted in
//!    [`CoreCounters::icmp_errors_forwarded`] besides `forwarded` and `member_packets`.
//!
//! **Forged errors.** Anyone can send an ICMP error to the alias quoting any flow. The error
//! reaches exactly the member that a packet of the quoted flow reaches, so the sender learns and
//! steers nothing it could not with a packet of that flow; the member's stack then validates the
//! error against its own socket (RFC 5927: TCP checks the quoted sequence number is in its
//! window). A sender cannot make the router create state or move another client's flow.
//!
//! Per-core tables: the error is looked up in the table of the core that received it, which for
//! RSS on the outer addresses need not be the core of the flow. A miss there falls back to the
//! consistent hash, which is where that flow's own packets go after a miss on any core; flows
//! whose SYN took the round robin are found only on their own core (one worker core, or RSS that
//! sends the error and the flow to the same core).
//!
//! Echo requests to an alias are not errors: classify punts them ([`PuntReason::IcmpEcho`]
//! (crate::PuntReason::IcmpEcho)) as before; other ICMP types stay `unsupported_icmp`. Nothing
//! here allocates, locks, logs or panics.

use crate::classify::PacketMeta;
use crate::hash::FlowKey;
use crate::refuse::RefusalLimiter;
use crate::select::{PolicyChoice, Selection, Selector};
use crate::snapshot::{MemberId, ServiceMode, Snapshot};
use crate::verdict::DropReason;
use crate::wire::icmp_quote::QuotedPacket;
use crate::wire::icmpv4::{self, Icmpv4Packet};
use crate::wire::ipv4::protocol;

/// Default of [`PipelineConfig::icmp_errors_per_sec`](crate::PipelineConfig::icmp_errors_per_sec).
pub const DEFAULT_PER_SEC: u32 = 1000;

/// Whether an ICMP message of this type to an alias goes through this stage.
#[inline(always)]
pub const fn is_error(msg_type: u8) -> bool {
    icmpv4::is_error(msg_type)
}

/// The flow (as the client's packets carry it: client → alias) of the datagram an ICMP error to
/// the alias at `alias_addr` quotes. See the module docs, step 1.
///
/// # Errors
/// `IcmpErrorBadQuote`, `IcmpErrorNotFromAlias` or `IcmpErrorUnknownFlow`.
#[inline]
pub fn quoted_flow(alias_addr: u32, icmp: &Icmpv4Packet<&[u8]>) -> Result<FlowKey, DropReason> {
    let q = QuotedPacket::new_checked(icmp.data()).map_err(|_| DropReason::IcmpErrorBadQuote)?;
    if u32::from(q.src_addr()) != alias_addr {
        return Err(DropReason::IcmpErrorNotFromAlias);
    }
    let proto = q.next_header();
    if (proto != protocol::TCP && proto != protocol::UDP)
        || q.frag_offset() != 0
        || q.src_port() == 0
        || q.dst_port() == 0
    {
        // Port 0 on the client side would also name a sticky affinity's key.
        return Err(DropReason::IcmpErrorUnknownFlow);
    }
    Ok(FlowKey {
        src: u32::from(q.dst_addr()),
        dst: alias_addr,
        src_port: q.dst_port(),
        dst_port: q.src_port(),
        proto,
    })
}

/// The member that owns the flow of an ICMP error classified as `meta` (step 2 of the module
/// docs), read-only: nothing in `sel` changes.
#[inline(never)]
pub fn owner(sel: &Selector, snap: &Snapshot, meta: &PacketMeta, now_ms: u64) -> Option<MemberId> {
    let key = &meta.key;
    let (mode, policy) = snap.service(key.proto, key.dst_port);
    if mode == ServiceMode::InNoalias {
        return None;
    }
    let up = |m: MemberId| snap.member(m).is_some_and(|m| m.up);
    let conns = sel.conns();
    if key.proto == protocol::TCP {
        if let Some(slot) = conns.find(key, meta.hash, now_ms) {
            if up(slot.member) {
                return Some(slot.member);
            }
        }
    }
    // What a TCP non-SYN miss of the flow would get, without the round robin (a wrr UDP
    // datagram's owner is the Maglev choice of its flow, as `stateless` gives).
    match sel.policy_choice(
        snap,
        meta,
        meta.alias.0 as usize,
        mode,
        policy,
        now_ms,
        true,
    ) {
        PolicyChoice::Decided(m) => m,
        PolicyChoice::RoundRobin => None,
    }
}

/// Whether this core can answer for the flow of an ICMP error classified as `meta`: anything
/// but TCP (UDP owners are computed, not stored), an in_noalias port (dropped wherever), or a
/// TCP flow in this core's table. With several workers a `false` sends the error to another
/// worker ([`crate::Verdict::ToWorker`]), whose table may hold the flow (issue 12).
pub fn held_here(sel: &Selector, snap: &Snapshot, meta: &PacketMeta, now_ms: u64) -> bool {
    let key = &meta.key;
    key.proto != protocol::TCP
        || snap.service(key.proto, key.dst_port).0 == ServiceMode::InNoalias
        || sel.conns().find(key, meta.hash, now_ms).is_some()
}

/// Select for an ICMP error: its flow's [`owner`], within this core's rate limit `limiter`.
#[inline]
pub fn select(
    sel: &Selector,
    limiter: &mut RefusalLimiter,
    snap: &Snapshot,
    meta: &PacketMeta,
    now_ms: u64,
) -> Selection {
    match owner(sel, snap, meta, now_ms) {
        None => Selection::Drop(DropReason::IcmpErrorUnknownFlow),
        Some(_) if !limiter.try_take(now_ms) => Selection::Drop(DropReason::IcmpErrorRateLimited),
        Some(member) => Selection::Member {
            member,
            new_flow: false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::tests::{frame, snap, tcp, ALIAS, CLIENT};
    use crate::classify::{classify, TCP_ACK, TCP_SYN};
    use crate::hash::FlowHashKey;
    use crate::select::Timeouts;
    use crate::snapshot::Policy;
    use crate::verdict::CoreCounters;
    use crate::wire::checksum::checksum;
    use crate::wire::icmp_quote::QuotedRepr;
    use core::net::Ipv4Addr;

    const T: Timeouts = Timeouts {
        tcp_idle_ms: 300_000,
        tcp_closing_ms: 10_000,
        tcp_half_open_ms: 5_000,
        sticky_ms: 300_000,
    };

    /// The 28-byte quote of a datagram `quoted_src:sport → client:dport` of protocol `proto`.
    fn quote(quoted_src: [u8; 4], proto: u8, sport: u16, dport: u16) -> [u8; 28] {
        let mut q = [0u8; 28];
        QuotedRepr {
            src_addr: Ipv4Addr::from(quoted_src),
            dst_addr: Ipv4Addr::from(CLIENT),
            next_header: proto,
            total_len: 1500,
            ident: 7,
            dont_frag: true,
            more_frags: false,
            frag_offset: 0,
            hop_limit: 63,
            src_port: sport,
            dst_port: dport,
            l4_word: 0x1000,
        }
        .emit(&mut QuotedPacket::new_unchecked(&mut q[..]));
        q
    }

    /// ICMP `ty`/`code` (next-hop MTU 1280) to the alias, quoting `quote`.
    fn error_quoting(ty: u8, code: u8, quote: &[u8]) -> Vec<u8> {
        let mut icmp = vec![ty, code, 0, 0, 0, 0, 0x05, 0x00];
        icmp.extend_from_slice(quote);
        let sum = checksum(&icmp);
        icmp[2..4].copy_from_slice(&sum.to_be_bytes());
        frame(ALIAS, 1, 0, &icmp)
    }

    fn error(ty: u8, code: u8, quoted_src: [u8; 4], proto: u8, sport: u16, dport: u16) -> Vec<u8> {
        error_quoting(ty, code, &quote(quoted_src, proto, sport, dport))
    }

    fn meta_of(s: &Snapshot, f: &[u8]) -> Result<PacketMeta, DropReason> {
        match classify(s, 0, f) {
            Ok(m) => Ok(m),
            Err(crate::Verdict::Drop(r)) => Err(r),
            Err(v) => panic!("{v:?}"),
        }
    }

    #[test]
    fn errors_classify_as_the_reversed_flow() {
        let s = snap();
        for ty in [3u8, 11, 12] {
            let m = meta_of(&s, &error(ty, 4, ALIAS, 6, 80, 40001)).unwrap();
            assert!(m.icmp_error);
            assert_eq!(
                m.key,
                FlowKey {
                    src: u32::from_be_bytes(CLIENT),
                    dst: u32::from_be_bytes(ALIAS),
                    src_port: 40001,
                    dst_port: 80,
                    proto: 6,
                }
            );
            // The hash of the flow's own packets: the table finds the flow under it.
            let own = meta_of(&s, &frame(ALIAS, 6, 0, &tcp(40001, 80, TCP_ACK))).unwrap();
            assert_eq!((m.hash, own.hash), (own.hash, m.hash));
            assert!(!own.icmp_error);
        }
        // Source quench, redirect, echo reply: not handled.
        for ty in [0u8, 4, 5] {
            assert_eq!(
                meta_of(&s, &error(ty, 0, ALIAS, 6, 80, 40001)),
                Err(DropReason::UnsupportedIcmp)
            );
        }
    }

    #[test]
    fn bad_and_foreign_quotes_are_counted_drops() {
        let s = snap();
        let e = |f: Vec<u8>| meta_of(&s, &f).unwrap_err();
        assert_eq!(
            e(error(3, 4, [198, 51, 100, 77], 6, 80, 40001)),
            DropReason::IcmpErrorNotFromAlias
        );
        assert_eq!(
            e(error(3, 4, ALIAS, 47, 80, 40001)),
            DropReason::IcmpErrorUnknownFlow
        );
        assert_eq!(
            e(error(3, 4, ALIAS, 6, 80, 0)),
            DropReason::IcmpErrorUnknownFlow
        );
        assert_eq!(
            e(error(3, 4, ALIAS, 17, 0, 53)),
            DropReason::IcmpErrorUnknownFlow
        );
        // A quote cut to 27 bytes (7 bytes of TCP), an IHL of 4, version 6.
        let q = quote(ALIAS, 6, 80, 40001);
        assert_eq!(
            e(error_quoting(3, 4, &q[..27])),
            DropReason::IcmpErrorBadQuote
        );
        for (i, v) in [(0usize, 0x44u8), (0, 0x65), (0, 0x46)] {
            let mut bad = q;
            bad[i] = v;
            assert_eq!(
                e(error_quoting(3, 4, &bad)),
                DropReason::IcmpErrorBadQuote,
                "{v:#x}"
            );
        }
        // A non-first fragment quotes data, not ports; a first fragment is fine.
        let mut frag = q;
        frag[7] = 0x10;
        assert_eq!(
            e(error_quoting(3, 4, &frag)),
            DropReason::IcmpErrorUnknownFlow
        );
        let mut first = q;
        first[6] = 0x20;
        assert!(meta_of(&s, &error_quoting(3, 4, &first)).is_ok());
    }

    /// The owner of a known TCP flow is its table entry's member; of an unknown one, the member a
    /// non-SYN miss of the flow gets; and asking changes nothing.
    #[test]
    fn owner_is_the_table_entry_else_the_miss_choice_and_nothing_is_written() {
        let s = snap();
        let c = CoreCounters::new(4);
        let mut sel = Selector::new(1024, T, &s);
        // Two connections: the round robin gives the first to m0 (selw 2), then m0, then m1.
        let mut owners = vec![];
        for port in [40001u16, 40002, 40003] {
            let m = meta_of(&s, &frame(ALIAS, 6, 0, &tcp(port, 80, TCP_SYN))).unwrap();
            match sel.select(&s, &m, 1000, &c) {
                Selection::Member { member, .. } => owners.push(member),
                r => panic!("{r:?}"),
            }
        }
        let inserts = CoreCounters::get(&c.conn_inserts);
        let cursors = sel.cursors().to_vec();
        let mut limiter = RefusalLimiter::new(100);
        for (port, want) in [40001u16, 40002, 40003].into_iter().zip(&owners) {
            let m = meta_of(&s, &error(3, 4, ALIAS, 6, 80, port)).unwrap();
            assert_eq!(
                select(&sel, &mut limiter, &s, &m, 1001),
                Selection::Member {
                    member: *want,
                    new_flow: false
                }
            );
        }
        // Unknown flows: what the flow's ACK (a miss) would get from select, on a copy.
        for port in 41000u16..41050 {
            let m = meta_of(&s, &error(3, 4, ALIAS, 6, 80, port)).unwrap();
            let got = owner(&sel, &s, &m, 1001);
            let mut other = Selector::new(1024, T, &s);
            let ack = meta_of(&s, &frame(ALIAS, 6, 0, &tcp(port, 80, TCP_ACK))).unwrap();
            match other.select(&s, &ack, 1001, &c) {
                Selection::Member { member, .. } => assert_eq!(got, Some(member), "port {port}"),
                r => panic!("{r:?}"),
            }
        }
        assert_eq!(CoreCounters::get(&c.conn_inserts), inserts + 50);
        // Nothing was written to `sel` by the errors: same cursors, same table.
        assert_eq!(sel.cursors(), &cursors[..]);
        let mut live = 0;
        sel.conns()
            .export(0, sel.conns().capacity(), 1001, |_| live += 1);
        assert_eq!(live, 3);
    }

    #[test]
    fn udp_goes_by_the_flow_hash_and_single_to_the_active_member() {
        let s = snap();
        let sel = Selector::new(1024, T, &s);
        // udp/53 is in_multi wrr (per datagram): the owner is the flow's Maglev choice, fixed
        // per 5-tuple.
        for port in 1000u16..1100 {
            let m = meta_of(&s, &error(3, 4, ALIAS, 17, 53, port)).unwrap();
            let a = owner(&sel, &s, &m, 0);
            assert!(a.is_some());
            assert_eq!(a, owner(&sel, &s, &m, 5_000));
        }
        // tcp/22 is in_single: the active member, whoever the client.
        let owners: Vec<_> = (1000u16..1020)
            .map(|p| {
                owner(
                    &sel,
                    &s,
                    &meta_of(&s, &error(11, 0, ALIAS, 6, 22, p)).unwrap(),
                    0,
                )
            })
            .collect();
        assert!(owners.iter().all(|o| *o == owners[0] && o.is_some()));
    }

    #[test]
    fn the_rate_limit_counts_only_forwardable_errors() {
        let s = snap();
        let sel = Selector::new(1024, T, &s);
        let mut limiter = RefusalLimiter::new(2);
        let good = meta_of(&s, &error(3, 4, ALIAS, 6, 80, 40001)).unwrap();
        let mut bad = good;
        bad.key.dst_port = 513; // in_noalias in the test snapshot
        for _ in 0..5 {
            assert_eq!(
                select(&sel, &mut limiter, &s, &bad, 1000),
                Selection::Drop(DropReason::IcmpErrorUnknownFlow)
            );
        }
        assert!(matches!(
            select(&sel, &mut limiter, &s, &good, 1000),
            Selection::Member { .. }
        ));
        assert!(matches!(
            select(&sel, &mut limiter, &s, &good, 1000),
            Selection::Member { .. }
        ));
        assert_eq!(
            select(&sel, &mut limiter, &s, &good, 1000),
            Selection::Drop(DropReason::IcmpErrorRateLimited)
        );
        // Half a second refills one.
        assert!(matches!(
            select(&sel, &mut limiter, &s, &good, 1500),
            Selection::Member { .. }
        ));
    }

    /// For every policy, the owner of an unknown flow is the member select gives a packet of the
    /// flow that misses the table: a TCP non-SYN miss, a UDP datagram (SC1–SC3 and their
    /// affinities included).
    #[test]
    fn owner_matches_select_under_every_policy() {
        use crate::snapshot::tests::{member, port};
        use crate::snapshot::{AliasMember, PortRole, ServicePolicy, ServiceSpec};
        use crate::AliasId;
        let alias = u32::from_be_bytes(ALIAS);
        for policy in [
            Policy::Wrr,
            Policy::Weighted,
            Policy::Sticky,
            Policy::WildcardSticky,
        ] {
            let s = Snapshot::build(
                1,
                vec![
                    port("client", PortRole::Client, 1, Some([198, 51, 100, 2])),
                    port("ic0", PortRole::Interconnect, 2, Some([192, 0, 2, 2])),
                ],
                vec![member(0, true), member(1, true), member(2, true)],
                vec![(
                    "web".into(),
                    Ipv4Addr::from(ALIAS),
                    (0..3)
                        .map(|i| AliasMember {
                            member: MemberId(i),
                            selw: i + 1,
                            selp: 1,
                        })
                        .collect(),
                )],
                &[
                    ServiceSpec {
                        proto: 6,
                        port: 80,
                        mode: ServiceMode::InMulti,
                    },
                    ServiceSpec {
                        proto: 17,
                        port: 53,
                        mode: ServiceMode::InMulti,
                    },
                ],
            )
            .unwrap()
            .with_policies(&[
                ServicePolicy {
                    proto: 6,
                    port: 80,
                    policy,
                },
                ServicePolicy {
                    proto: 17,
                    port: 53,
                    policy,
                },
            ])
            .unwrap();
            let c = CoreCounters::new(4);
            let mut sel = Selector::new(4096, T, &s);
            let meta = |client: u32, proto: u8, sport: u16, dport: u16, flags: u8| {
                let key = FlowKey {
                    src: client,
                    dst: alias,
                    src_port: sport,
                    dst_port: dport,
                    proto,
                };
                PacketMeta {
                    key,
                    hash: key.hash_keyed(&FlowHashKey::FIXED),
                    tcp_flags: flags,
                    tcp_seq: 9,
                    alias: AliasId(0),
                    ..PacketMeta::default()
                }
            };
            let member_of = |r: Selection| match r {
                Selection::Member { member, .. } => member,
                r => panic!("{r:?}"),
            };
            // Half the clients have completed a connection first (sticky: their affinities).
            for i in 0..40u32 {
                let client = 0xc633_6400 + 20 + i;
                if i % 2 == 0 {
                    for flags in [TCP_SYN, TCP_ACK] {
                        sel.select(&s, &meta(client, 6, 1000, 80, flags), 0, &c);
                    }
                }
                let cursors = sel.cursors().to_vec();
                let mut e = meta(client, 6, 2000 + i as u16, 80, 0);
                e.icmp_error = true;
                let want = owner(&sel, &s, &e, 1);
                assert_eq!(sel.cursors(), &cursors[..]);
                let got = member_of(sel.select(
                    &s,
                    &meta(client, 6, 2000 + i as u16, 80, TCP_ACK),
                    1,
                    &c,
                ));
                assert_eq!(want, Some(got), "{policy:?} tcp client {i}");
                // Known now: the table's member.
                assert_eq!(owner(&sel, &s, &e, 2), Some(got));
                let mut u = meta(client, 17, 3000 + i as u16, 53, 0);
                u.icmp_error = true;
                let want = owner(&sel, &s, &u, 3);
                if policy == Policy::Wrr {
                    // Per datagram round robin: the flow's Maglev choice instead, stable.
                    assert_eq!(want, owner(&sel, &s, &u, 4));
                } else {
                    let got =
                        member_of(sel.select(&s, &meta(client, 17, 3000 + i as u16, 53, 0), 3, &c));
                    assert_eq!(want, Some(got), "{policy:?} udp client {i}");
                }
            }
        }
    }
}

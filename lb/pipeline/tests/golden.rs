//! Golden packet fixtures (Katran style): `tests/fixtures/golden.txt` holds input frames,
//! expected verdicts and hand-assembled expected output frames; every case runs, in order,
//! through one real [`Pipeline`]. The file documents its own format. The topology built here
//! is the one described at the top of golden.txt (aliasd's test TOML mirrors it).

mod common;

use std::sync::Arc;

use clua_pipeline::{
    CoreCounters, DropReason, PacketBuf, Pipeline, PipelineConfig, PuntReason, Snapshot, VecBuf,
    Verdict,
};
use common::topology;

#[path = "fixtures/golden_format.rs"]
mod golden_format;
use golden_format::{parse_fixtures, Case};

fn fixtures() -> Vec<Case> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/golden.txt");
    parse_fixtures(&std::fs::read_to_string(path).expect("read golden.txt"))
}

fn icmp_error_fixtures() -> Vec<Case> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/icmp_errors.txt"
    );
    parse_fixtures(&std::fs::read_to_string(path).expect("read icmp_errors.txt"))
}

fn fragment_fixtures() -> Vec<Case> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/fragments.txt");
    parse_fixtures(&std::fs::read_to_string(path).expect("read fragments.txt"))
}

fn policy_fixtures() -> Vec<Case> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/policies.txt");
    parse_fixtures(&std::fs::read_to_string(path).expect("read policies.txt"))
}

fn expected_verdict(snap: &Snapshot, c: &Case) -> Verdict {
    parse_verdict(snap, &c.name, &c.verdict)
}

/// `forward PORT | drop REASON | punt REASON | hold` (a hold's slot is not checked: 0).
fn parse_verdict(snap: &Snapshot, case: &str, verdict: &str) -> Verdict {
    if verdict == "hold" {
        return Verdict::Hold(0);
    }
    let c = Case {
        name: case.into(),
        verdict: verdict.into(),
        ..Case::default()
    };
    let (kind, arg) = c
        .verdict
        .split_once(' ')
        .unwrap_or_else(|| panic!("case {}: verdict", c.name));
    match kind {
        "forward" => Verdict::Forward(port_id(snap, arg)),
        "drop" => Verdict::Drop(
            *DropReason::ALL
                .iter()
                .find(|r| r.name() == arg)
                .unwrap_or_else(|| panic!("case {}: unknown drop reason {arg}", c.name)),
        ),
        "punt" => Verdict::Punt(
            *PuntReason::ALL
                .iter()
                .find(|r| r.name() == arg)
                .unwrap_or_else(|| panic!("case {}: unknown punt reason {arg}", c.name)),
        ),
        _ => panic!("case {}: bad verdict {}", c.name, c.verdict),
    }
}

fn port_id(snap: &Snapshot, name: &str) -> u16 {
    snap.ports
        .iter()
        .position(|p| p.name == name)
        .unwrap_or_else(|| panic!("no port {name}")) as u16
}

fn member_id(snap: &Snapshot, name: &str) -> usize {
    snap.members
        .iter()
        .position(|m| m.as_ref().is_some_and(|m| m.name == name))
        .unwrap_or_else(|| panic!("no member {name}"))
}

/// A copy of every counter, for before/after comparisons.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Counts {
    rx: u64,
    forwarded: u64,
    refusals_sent: u64,
    drops: Vec<u64>,
    punts: Vec<u64>,
    member_packets: Vec<u64>,
}

fn counts(c: &CoreCounters) -> Counts {
    Counts {
        rx: CoreCounters::get(&c.rx),
        forwarded: CoreCounters::get(&c.forwarded),
        refusals_sent: CoreCounters::get(&c.refusals_sent),
        drops: c.drops.iter().map(CoreCounters::get).collect(),
        punts: c.punts.iter().map(CoreCounters::get).collect(),
        member_packets: c.member_packets.iter().map(CoreCounters::get).collect(),
    }
}

fn new_pipeline() -> Pipeline {
    pipeline_over(topology())
}

fn pipeline_over(snap: Snapshot) -> Pipeline {
    pipeline_with(
        PipelineConfig {
            conn_capacity: 1024,
            ..Default::default()
        },
        snap,
    )
}

fn pipeline_with(cfg: PipelineConfig, snap: Snapshot) -> Pipeline {
    let counters = Arc::new(cfg.new_counters());
    Pipeline::new(&cfg, Arc::new(snap), counters)
}

fn hex(b: &[u8]) -> String {
    b.chunks(16)
        .map(|c| {
            c.iter()
                .map(|x| format!("{x:02x}"))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn check_result(c: &Case, snap: &Snapshot, verdict: Verdict, buf: &VecBuf) {
    let want = expected_verdict(snap, c);
    if let Verdict::Hold(_) = want {
        assert!(
            matches!(verdict, Verdict::Hold(_)),
            "case {} (line {}): verdict {verdict:?}, want hold",
            c.name,
            c.line
        );
        assert_eq!(
            buf.data(),
            c.input.as_slice(),
            "case {}: held unchanged",
            c.name
        );
        return;
    }
    assert_eq!(verdict, want, "case {} (line {}): verdict", c.name, c.line);
    if let Verdict::Forward(_) = want {
        assert!(
            buf.data() == c.output.as_slice(),
            "case {} (line {}): output differs\n got:\n{}\nwant:\n{}",
            c.name,
            c.line,
            hex(buf.data()),
            hex(&c.output)
        );
    } else if let Verdict::Punt(_) = want {
        assert_eq!(
            buf.data(),
            c.input.as_slice(),
            "case {}: punted packets are unchanged",
            c.name
        );
    }
}

/// Every case, one packet per burst, in file order; checks verdict, bytes and counters.
#[test]
fn golden_cases_one_per_burst() {
    let cases = fixtures();
    assert!(cases.len() >= 30, "only {} cases", cases.len());
    run_one_per_burst(&cases, new_pipeline());
}

/// fixtures/policies.txt (issue 9; SC1–SC3) over the policy topology, one packet per burst and
/// in one burst: the same checks as golden.txt's.
#[test]
fn policy_cases() {
    let cases = policy_fixtures();
    assert!(cases.len() >= 15, "only {} cases", cases.len());
    run_one_per_burst(&cases, pipeline_over(common::policy_topology()));
    run_in_bursts(&cases, pipeline_over(common::policy_topology()));
}

/// fixtures/out_alias.txt (CA9): replies to members' out_alias connections go to the member
/// whose range holds their destination port, past select: the steered cases (the first four)
/// leave no connection-table entry; the cases that go to select do. Also in one burst.
#[test]
fn out_alias_cases() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/out_alias.txt");
    let cases = parse_fixtures(&std::fs::read_to_string(path).expect("read out_alias.txt"));
    assert_eq!(cases.len(), 8);
    let steered = 4;
    assert!(cases[..steered]
        .iter()
        .all(|c| c.name.starts_with("out_alias_")));
    let mut p = pipeline_over(common::out_alias_topology());
    let counters = p.counters().clone();
    run_one_per_burst_ref(&cases[..steered], &mut p);
    assert_eq!(
        CoreCounters::get(&counters.conn_inserts),
        0,
        "steered past select"
    );
    assert_eq!(
        CoreCounters::get(&counters.out_alias_steered),
        steered as u64,
        "each steered reply counted"
    );
    run_one_per_burst_ref(&cases[steered..], &mut p);
    assert_eq!(
        CoreCounters::get(&counters.out_alias_steered),
        steered as u64,
        "nothing else counted as steered"
    );
    assert_eq!(
        CoreCounters::get(&counters.conn_inserts),
        (cases.len() - steered - 1) as u64,
        "the TCP cases that went to select were inserted (the UDP one is not)"
    );
    run_in_bursts(&cases, pipeline_over(common::out_alias_topology()));
}

/// The ICMP error names (`icmp_error_*`), which fixtures/icmp_errors.txt covers instead of
/// golden.txt.
fn is_icmp_error_reason(r: DropReason) -> bool {
    r.name().starts_with("icmp_error_")
}

/// fixtures/icmp_errors.txt (CA7: ICMP errors in alias context, issue 10) over the golden
/// topology with a rate limit of 4 errors a second, one packet per burst and in bursts; every
/// `icmp_error_*` drop reason has a case, and forwarded errors are counted as such.
#[test]
fn icmp_error_cases() {
    let cases = icmp_error_fixtures();
    assert!(cases.len() >= 25, "only {} cases", cases.len());
    let cfg = PipelineConfig {
        conn_capacity: 1024,
        icmp_errors_per_sec: 4,
        ..Default::default()
    };
    let p = pipeline_with(cfg.clone(), topology());
    let counters = p.counters().clone();
    run_one_per_burst(&cases, p);
    run_in_bursts(&cases, pipeline_with(cfg, topology()));
    let snap = topology();
    let seen: Vec<Verdict> = cases.iter().map(|c| expected_verdict(&snap, c)).collect();
    for r in DropReason::ALL.iter().filter(|r| is_icmp_error_reason(**r)) {
        assert!(
            seen.contains(&Verdict::Drop(*r)),
            "no icmp_errors.txt case for {}",
            r.name()
        );
    }
    // Errors are the cases whose input frame is ICMP (protocol 1 at byte 23) and not the echo
    // request (type 8 at byte 34).
    let forwarded_errors = cases
        .iter()
        .filter(|c| {
            c.verdict.starts_with("forward")
                && c.input.get(23) == Some(&1)
                && c.input.get(34) != Some(&8)
        })
        .count() as u64;
    assert!(forwarded_errors >= 10);
    assert_eq!(
        CoreCounters::get(&counters.icmp_errors_forwarded),
        forwarded_errors
    );
}

fn run_one_per_burst(cases: &[Case], mut p: Pipeline) {
    run_one_per_burst_ref(cases, &mut p);
}

fn run_one_per_burst_ref(cases: &[Case], p: &mut Pipeline) {
    let snap = p.snapshot().clone();
    // Held fragments (issue 10), as aliasd's worker parks them: slot -> (case, buffer).
    let mut held = p.new_held::<VecBuf>();
    let mut held_cases: Vec<(u16, &Case)> = Vec::new();
    for c in cases {
        let before = counts(p.counters());
        let mut bufs = [VecBuf::new(&c.input)];
        bufs[0].set_rss_hash(c.rss);
        let mut verdicts = [Verdict::Drop(DropReason::TxFull)];
        p.process_burst(port_id(&snap, &c.port), c.time, &mut bufs, &mut verdicts);
        check_result(c, &snap, verdicts[0], &bufs[0]);

        // Exactly the counters of this verdict moved.
        let after = counts(p.counters());
        let mut expect = before.clone();
        expect.rx += 1;
        match verdicts[0] {
            Verdict::Forward(_) => {
                expect.forwarded += 1;
                match c.member.as_deref() {
                    Some(name) => expect.member_packets[member_id(&snap, name)] += 1,
                    // No member: the router's own answer (a refusal).
                    None => expect.refusals_sent += 1,
                }
            }
            Verdict::Drop(r) => expect.drops[r as usize] += 1,
            Verdict::Punt(r) => expect.punts[r as usize] += 1,
            Verdict::ToWorker => panic!("case {}: handed to another worker (off here)", c.name),
            Verdict::Hold(slot) => {
                let [buf] = bufs;
                assert!(held.put(slot, buf).is_ok(), "case {}: slot {slot}", c.name);
                held_cases.push((slot, c));
            }
        }
        assert_eq!(after, expect, "case {}: counters", c.name);

        // What the pipeline releases after the burst: exactly the `released` lines, in order.
        let before = counts(p.counters());
        let mut expect = before.clone();
        let mut got = Vec::new();
        p.release_held(&mut held, c.time, |buf, v| got.push((buf, v)));
        assert_eq!(
            got.len(),
            c.released.len(),
            "case {}: released {:?}",
            c.name,
            got.iter().map(|g| g.1).collect::<Vec<_>>()
        );
        for ((buf, v), (name, verdict)) in got.into_iter().zip(&c.released) {
            let pos = held_cases
                .iter()
                .position(|(_, h)| &h.name == name)
                .unwrap_or_else(|| panic!("case {}: {name} was not held", c.name));
            let (_, h) = held_cases.remove(pos);
            let want = parse_verdict(&snap, &h.name, verdict);
            assert_eq!(v, want, "case {}: release of {name}", c.name);
            match v {
                Verdict::Forward(_) => {
                    assert!(
                        buf.data() == h.output.as_slice(),
                        "case {}: released {name} differs\n got:\n{}\nwant:\n{}",
                        c.name,
                        hex(buf.data()),
                        hex(&h.output)
                    );
                    expect.forwarded += 1;
                    let m = h.member.as_deref().expect("a held case names its member");
                    expect.member_packets[member_id(&snap, m)] += 1;
                }
                Verdict::Drop(r) => expect.drops[r as usize] += 1,
                other => panic!("case {}: released as {other:?}", c.name),
            }
        }
        assert_eq!(
            counts(p.counters()),
            expect,
            "case {}: release counters",
            c.name
        );
    }
    assert!(
        held_cases.is_empty() || held.len() == held_cases.len(),
        "held cases and parked buffers agree"
    );
}

/// fixtures/fragments.txt (issue 10; CA7, 000 §6.6.5): IPv4 fragments through the golden
/// topology with a small fragment table (one bucket of 4 datagrams, 2 hold slots, 2000 ms), one
/// packet per burst (holding depends on arrival order), each burst followed by the release a
/// worker does.
#[test]
fn fragment_cases() {
    let cases = fragment_fixtures();
    assert!(cases.len() >= 15, "only {} cases", cases.len());
    let cfg = PipelineConfig {
        conn_capacity: 1024,
        fragments: clua_pipeline::fragments::FragmentConfig {
            capacity: 4,
            timeout_ms: 2000,
            max_held: 2,
        },
        ..Default::default()
    };
    let counters = Arc::new(cfg.new_counters());
    run_one_per_burst(&cases, Pipeline::new(&cfg, Arc::new(topology()), counters));
}

/// The same cases in bursts of up to 32 (consecutive cases with the same port and time): the
/// results must not depend on how packets are grouped.
#[test]
fn golden_cases_in_bursts() {
    run_in_bursts(&fixtures(), new_pipeline());
}

fn run_in_bursts(cases: &[Case], mut p: Pipeline) {
    let snap = p.snapshot().clone();
    let mut i = 0;
    while i < cases.len() {
        let mut j = i + 1;
        while j < cases.len()
            && j - i < 32
            && cases[j].port == cases[i].port
            && cases[j].time == cases[i].time
        {
            j += 1;
        }
        let group = &cases[i..j];
        let mut bufs: Vec<VecBuf> = group
            .iter()
            .map(|c| {
                let mut b = VecBuf::new(&c.input);
                b.set_rss_hash(c.rss);
                b
            })
            .collect();
        let mut verdicts = vec![Verdict::Drop(DropReason::TxFull); group.len()];
        p.process_burst(
            port_id(&snap, &group[0].port),
            group[0].time,
            &mut bufs,
            &mut verdicts,
        );
        for (k, c) in group.iter().enumerate() {
            check_result(c, &snap, verdicts[k], &bufs[k]);
        }
        i = j;
    }
    let c = p.counters();
    assert_eq!(CoreCounters::get(&c.rx), cases.len() as u64);
}

/// Drop reasons golden.txt cannot exercise, with where each is tested instead. Every other
/// [`DropReason`] must have a golden case: a variant added to the enum fails
/// `golden_covers_reasons` until it gets one or an entry here.
const NOT_IN_GOLDEN: &[(DropReason, &str)] = &[
    (
        DropReason::NoHeadroom,
        "needs less headroom than a received buffer has: encap::tests, refuse::tests",
    ),
    (
        DropReason::PuntQueueFull,
        "decided by aliasd's worker loop after the pipeline",
    ),
    (
        DropReason::TxFull,
        "decided by aliasd's worker loop after the pipeline",
    ),
    (
        DropReason::NoSourceAddress,
        "needs an interconnect port without an address: encap::tests",
    ),
    (
        DropReason::FragmentFlushed,
        "decided by aliasd's worker loop at stop (lb/tests/worker.rs)",
    ),
];

/// Every drop reason (all of `DropReason::ALL` but the few in [`NOT_IN_GOLDEN`]) and every
/// punt reason has a golden case, and so do both kinds of refusal.
#[test]
fn golden_covers_reasons() {
    let mut cases = fixtures();
    let snap = topology();
    // The fragment verdicts (issue 10) have their own file.
    let frags = fragment_fixtures();
    let mut seen: Vec<Verdict> = frags
        .iter()
        .flat_map(|c| c.released.iter().map(|(n, v)| parse_verdict(&snap, n, v)))
        .collect();
    cases.extend(frags);
    seen.extend(cases.iter().map(|c| expected_verdict(&snap, c)));
    let missing: Vec<&str> = DropReason::ALL
        .iter()
        .filter(|r| !NOT_IN_GOLDEN.iter().any(|(x, _)| x == *r))
        .filter(|r| !is_icmp_error_reason(**r))
        .filter(|r| !seen.contains(&Verdict::Drop(**r)))
        .map(|r| r.name())
        .collect();
    assert!(missing.is_empty(), "no golden case for drop {missing:?}");
    // The exemptions stay honest: a reason with a golden case comes off the list.
    for (r, why) in NOT_IN_GOLDEN {
        assert!(
            !seen.contains(&Verdict::Drop(*r)),
            "{} has a golden case now; remove it from NOT_IN_GOLDEN ({why})",
            r.name()
        );
    }
    // Refusals: a TCP RST and an ICMP port unreachable, both sent back on the client port.
    let refusals: Vec<&Case> = cases
        .iter()
        .filter(|c| c.verdict.starts_with("forward") && c.member.is_none())
        .collect();
    for proto in [6u8, 17] {
        assert!(
            refusals
                .iter()
                .any(|c| c.input.get(23) == Some(&proto) && c.verdict == "forward client"),
            "no golden refusal for protocol {proto}"
        );
    }
    // The routing protocols are punted only when the snapshot enables them ([router], RIP,
    // BFD, flow hand-off), which the golden topology (and aliasd's golden.toml, which needs no key files)
    // does not: classify's unit test `routing_protocols_are_punted_by_port_role_and_destination`
    // and lb/tests/routers.rs cover them.
    const ROUTING: [PuntReason; 4] = [
        PuntReason::Router,
        PuntReason::Rip,
        PuntReason::Bfd,
        PuntReason::Sync,
    ];
    for r in PuntReason::ALL {
        assert_eq!(
            seen.contains(&Verdict::Punt(r)),
            !ROUTING.contains(&r),
            "golden case for punt {}",
            r.name()
        );
    }
}

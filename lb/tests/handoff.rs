//! Issue 9, one router restarting: the flows file (lb/src/flows_file.rs) over real pipelines
//! and real files. A flow whose SYN went by the round robin keeps its member across a restart
//! because the restarted router's tables are restored from the file, where the consistent hash
//! alone would send many such flows elsewhere.

#[path = "../pipeline/tests/common/mod.rs"]
mod common;

use std::path::PathBuf;

use clua_lb::flows_file::{self, FlowsFileError, FormatError, Saved};
use clua_pipeline::conntrack::{FlowState, InstallOutcome};
use clua_pipeline::handoff::FlowRecord;
use clua_pipeline::hash::{FlowHashKey, FlowKey};
use clua_pipeline::snapshot::MemberId;
use clua_pipeline::{PacketBuf, Pipeline, PipelineConfig, VecBuf, Verdict};
use common::*;
use std::sync::Arc;

/// A directory of its own under the system's temporary directory, removed afterwards.
struct TmpDir(PathBuf);

impl TmpDir {
    fn new(name: &str) -> Self {
        let d = std::env::temp_dir().join(format!("clua-handoff-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        TmpDir(d)
    }
}

impl Drop for TmpDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn pipeline(key: FlowHashKey) -> Pipeline {
    let cfg = PipelineConfig {
        hash_key: key,
        ..PipelineConfig::default()
    };
    let counters = Arc::new(cfg.new_counters());
    Pipeline::new(&cfg, Arc::new(topology()), counters)
}

/// The member MAC a forwarded frame went to (m1..m3 are 02:00:00:00:01:0N on ic0).
fn send(p: &mut Pipeline, now: u64, sport: u16, flags: u8) -> Option<MemberId> {
    let mut pkts = [VecBuf::new(&tcp_frame(CLIENT, sport, WEB, 80, flags))];
    let mut v = [Verdict::Forward(0)];
    p.process_burst(0, now, &mut pkts, &mut v);
    match v[0] {
        Verdict::Forward(1) => {
            let mac = &pkts[0].data()[..6];
            (mac[..5] == [2, 0, 0, 0, 1]).then(|| MemberId(u32::from(mac[5]) - 1))
        }
        _ => None,
    }
}

fn key(sport: u16) -> FlowKey {
    FlowKey {
        src: u32::from_be_bytes(CLIENT),
        dst: u32::from_be_bytes(WEB),
        src_port: sport,
        dst_port: 80,
        proto: 6,
    }
}

fn record(sport: u16, member: u32, state: FlowState, isn: u32, remaining_ms: u32) -> FlowRecord {
    FlowRecord {
        key: key(sport),
        member: MemberId(member),
        state,
        isn,
        remaining_ms,
    }
}

/// Issue 9: "One router, SIGTERM and restart with 20 long-lived connections: all continue".
/// 60 connections opened by SYNs (weighted round robin, 3:2:1) on the old router; its table is
/// written to the flows file at stop; the restarted router (a new table hash key) installs it
/// and sends every connection's next mid-flow segment to its old member. Without the file,
/// the consistent hash sends some of them to another member: the scenario is real.
#[test]
fn a_restarted_pipeline_keeps_round_robin_flows_on_their_members() {
    let dir = TmpDir::new("restart");
    let file = dir.0.join("flows");
    let mut old = pipeline(FlowHashKey::new([1, 2]));
    let mut chosen = Vec::new();
    for i in 0..60 {
        let m = send(&mut old, 1_000, 50_000 + i, SYN).expect("forwarded");
        assert_eq!(send(&mut old, 1_010, 50_000 + i, ACK), Some(m));
        chosen.push(m);
    }
    // SIGTERM: the table handed back, written with the wall clock.
    let mut records = Vec::new();
    old.export(0, old.conn_capacity(), 2_000, |r| records.push(r));
    assert_eq!(records.len(), 60);
    let written = 1_764_640_000_000;
    flows_file::write(
        &file,
        &flows_file::collect(&records, old.snapshot(), written),
    )
    .unwrap();
    assert_eq!(
        std::fs::read_dir(&dir.0).unwrap().count(),
        1,
        "no temporary file left behind"
    );

    // The restart, 600 ms later: a new table (new key), a clock that starts elsewhere.
    let saved = flows_file::read(&file).unwrap().expect("the file is there");
    let snap = topology();
    let restored = flows_file::restore(&saved, &snap, written + 600);
    assert_eq!((restored.records.len(), restored.expired), (60, 0));
    let mut new = pipeline(FlowHashKey::new([3, 4]));
    for r in &restored.records {
        assert_eq!(new.install(r, 50), InstallOutcome::Installed);
    }
    for (i, m) in chosen.iter().enumerate() {
        assert_eq!(
            send(&mut new, 100, 50_000 + i as u16, ACK),
            Some(*m),
            "flow {i} kept its member"
        );
    }
    // Without the file: the consistent hash, which moves some of them.
    let mut bare = pipeline(FlowHashKey::new([3, 4]));
    let moved = chosen
        .iter()
        .enumerate()
        .filter(|(i, m)| send(&mut bare, 100, 50_000 + *i as u16, ACK) != Some(**m))
        .count();
    assert!(
        moved > 0,
        "the round robin and the consistent hash agreed on every flow"
    );
}

/// The file round-trips; what is kept: established and closing flows and sticky affinities
/// (src_port 0), not half-open entries; one record per flow across workers (the one with an
/// isn, then the longer one); members by name.
#[test]
fn the_file_round_trips_what_is_worth_keeping_once_per_flow() {
    let dir = TmpDir::new("roundtrip");
    let file = dir.0.join("sub").join("flows");
    let snap = topology();
    let affinity = FlowRecord {
        key: FlowKey {
            src_port: 0,
            ..key(0)
        },
        member: MemberId(2),
        state: FlowState::Established,
        isn: 0,
        remaining_ms: 250_000,
    };
    let records = vec![
        record(1, 0, FlowState::Established, 11, 300_000),
        record(2, 1, FlowState::Closing, 12, 9_000),
        record(3, 2, FlowState::HalfOpen, 13, 4_000),
        affinity,
        // Flow 1 again, from a second worker that installed it mid-flow: the first wins.
        record(1, 1, FlowState::Established, 0, 300_001),
        // Flow 4 twice, the longer one wins.
        record(4, 2, FlowState::Established, 14, 1_000),
        record(4, 2, FlowState::Established, 14, 2_000),
        // A member the snapshot does not have: not written.
        record(5, 9, FlowState::Established, 15, 1_000),
    ];
    let saved = flows_file::collect(&records, &snap, 5_000);
    flows_file::write(&file, &saved).unwrap();
    let back = flows_file::read(&file).unwrap().unwrap();
    assert_eq!(back, saved);
    assert_eq!(back.written_ms, 5_000);
    let mut names = back.members.clone();
    names.sort();
    assert_eq!(names, ["m1", "m2", "m3"]);
    let restored = flows_file::restore(&back, &snap, 5_000);
    let mut got = restored.records.clone();
    got.sort_by_key(|r| r.key.src_port);
    assert_eq!(
        got,
        vec![
            affinity,
            record(1, 0, FlowState::Established, 11, 300_000),
            record(2, 1, FlowState::Closing, 12, 9_000),
            record(4, 2, FlowState::Established, 14, 2_000),
        ]
    );
    // Writing again replaces the file atomically.
    let fewer = flows_file::collect(&records[..1], &snap, 6_000);
    flows_file::write(&file, &fewer).unwrap();
    assert_eq!(flows_file::read(&file).unwrap().unwrap(), fewer);
    assert_eq!(
        std::fs::read_dir(file.parent().unwrap()).unwrap().count(),
        1
    );
}

/// Time passes between stop and start: each flow loses the file's age, and those with less
/// time left than that are dropped and counted. A file from the future counts as fresh.
#[test]
fn restore_drops_expired_flows_and_ages_the_rest() {
    let snap = topology();
    let records = vec![
        record(1, 0, FlowState::Established, 1, 300_000),
        record(2, 1, FlowState::Closing, 2, 9_000),
        record(3, 2, FlowState::Established, 3, 10_000),
    ];
    let saved = flows_file::collect(&records, &snap, 100_000);
    let r = flows_file::restore(&saved, &snap, 110_000);
    assert_eq!((r.records.len(), r.expired, r.unknown_member), (1, 2, 0));
    assert_eq!(r.records[0].remaining_ms, 290_000);
    assert_eq!(r.records[0].key, key(1));
    let r = flows_file::restore(&saved, &snap, 50_000);
    assert_eq!(r.records.len(), 3, "a clock set back: no time has passed");
    let mut rem: Vec<u32> = r.records.iter().map(|r| r.remaining_ms).collect();
    rem.sort_unstable();
    assert_eq!(rem, [9_000, 10_000, 300_000]);
}

/// Members are mapped by name to the new snapshot's ids (ids are per build); flows of a member
/// that is gone are dropped and counted.
#[test]
fn restore_maps_members_by_name() {
    let snap = topology();
    let records = vec![
        record(1, 0, FlowState::Established, 1, 300_000), // m1
        record(2, 1, FlowState::Established, 2, 300_000), // m2
        record(3, 2, FlowState::Established, 3, 300_000), // m3
    ];
    let saved = flows_file::collect(&records, &snap, 0);
    // The new configuration lists m2 first and m1 second, and has no m3.
    let mut renamed = topology();
    renamed.members[0].as_mut().unwrap().name = "m2".into();
    renamed.members[1].as_mut().unwrap().name = "m1".into();
    renamed.members[2].as_mut().unwrap().name = "m9".into();
    let r = flows_file::restore(&saved, &renamed, 0);
    assert_eq!(r.unknown_member, 1);
    let mut got: Vec<(u16, u32)> = r
        .records
        .iter()
        .map(|r| (r.key.src_port, r.member.0))
        .collect();
    got.sort_unstable();
    assert_eq!(got, [(1, 1), (2, 0)]);
}

/// A corrupt or foreign file is an error naming the file and what is wrong (aliasd logs it
/// and starts with empty tables); a missing file is no error.
#[test]
fn corrupt_foreign_and_missing_files() {
    let dir = TmpDir::new("corrupt");
    let file = dir.0.join("flows");
    assert!(
        flows_file::read(&file).unwrap().is_none(),
        "missing is normal"
    );
    std::fs::write(&file, b"# some other program's file\n").unwrap();
    let e = flows_file::read(&file).unwrap_err();
    assert!(matches!(
        e,
        FlowsFileError::Format {
            what: FormatError::Magic,
            ..
        }
    ));
    let shown = e.to_string();
    assert!(shown.contains(&file.display().to_string()), "{shown}");
    assert!(shown.contains("not a clua flows file"), "{shown}");
    let saved = Saved {
        written_ms: 1,
        members: vec!["m1".into()],
        flows: vec![],
    };
    let mut bytes = flows_file::encode(&flows_file::collect(
        &[record(1, 0, FlowState::Established, 1, 1000)],
        &topology(),
        1,
    ));
    let last = bytes.len() - 9;
    bytes[last] ^= 1;
    std::fs::write(&file, &bytes).unwrap();
    let e = flows_file::read(&file).unwrap_err().to_string();
    assert!(e.contains("checksum mismatch: corrupt"), "{e}");
    let good = flows_file::encode(&saved);
    std::fs::write(&file, &good[..good.len() - 3]).unwrap();
    let e = flows_file::read(&file).unwrap_err().to_string();
    assert!(e.contains("truncated"), "{e}");
    // A directory where the file should be: a read error, named.
    let e = flows_file::read(&dir.0).unwrap_err().to_string();
    assert!(e.contains("cannot read"), "{e}");
}

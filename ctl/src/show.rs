//! `cluamgr -s`: each alias's attributes, members, state and counters as a readable table.

use std::fmt::Write as _;

use clua_pipeline::snapshot::{MemberId, ServiceMode, Snapshot};

use crate::apply::{find_alias, ControlState};
use crate::command::ShowWhat;

/// Per-member counters summed over the workers: (packets forwarded, new flows).
pub type MemberCounters<'a> = &'a dyn Fn(MemberId) -> (u64, u64);

/// Renders `-s` for the state in force (`snapshot` is the one built from it: up/down state,
/// the in_single active member).
pub fn render_show(
    state: &ControlState,
    snapshot: &Snapshot,
    what: &ShowWhat,
    counters: MemberCounters,
) -> String {
    let cl = &state.cluster;
    let mut o = String::new();
    let selected: Vec<usize> = match what {
        ShowWhat::All => (0..cl.aliases.len()).collect(),
        ShowWhat::Alias(a) => find_alias(cl, a).into_iter().collect(),
    };
    if matches!(what, ShowWhat::All) {
        let _ = writeln!(
            o,
            "cluster {}: {} of at most {} aliases, default alias {}, resvok {}",
            cl.name,
            cl.aliases.len(),
            cl.max_aliases,
            cl.default_alias,
            if state.resvok { "on" } else { "off" }
        );
    }
    for i in selected {
        let a = &cl.aliases[i];
        let snap_alias = snapshot.aliases.iter().find(|s| s.addr == a.address);
        let subnet = if a.virtual_subnet {
            "virtual"
        } else {
            "common"
        };
        let mask = a.mask.map(|m| format!(" mask {m}")).unwrap_or_default();
        let default = if a.name == cl.default_alias {
            " (default alias)"
        } else {
            ""
        };
        let _ = writeln!(
            o,
            "\nalias {} {}{default}\n  rpri {}  {subnet} subnet{mask}",
            a.name, a.address, a.rpri
        );
        if a.members.is_empty() {
            let _ = writeln!(o, "  no members (routed only)");
            continue;
        }
        let _ = writeln!(
            o,
            "  {:<12} {:>5} {:>6}  {:<5} {:<16} {:>12} {:>10}",
            "member", "selw", "selp", "state", "traffic", "packets", "flows"
        );
        for j in &a.members {
            let id = cl.member_id(&j.member);
            let up = id.and_then(|id| snapshot.member(id)).is_some_and(|m| m.up);
            let (packets, flows) = id.map(counters).unwrap_or((0, 0));
            let traffic = match (snap_alias, id) {
                (Some(sa), Some(id)) => {
                    let multi = sa.multi_schedule.contains(&id);
                    let single = sa.single_active == Some(id);
                    match (multi, single) {
                        (true, true) => "in_multi+single",
                        (true, false) => "in_multi",
                        (false, true) => "in_single",
                        (false, false) => "standby",
                    }
                }
                _ => "-",
            };
            let _ = writeln!(
                o,
                "  {:<12} {:>5} {:>6}  {:<5} {:<16} {:>12} {:>10}",
                j.member,
                j.selw,
                j.selp,
                if up { "up" } else { "down" },
                traffic,
                packets,
                flows
            );
        }
    }
    if matches!(what, ShowWhat::All) {
        let _ = writeln!(o, "\nservices (unlisted ports are in_single)");
        if cl.services.is_empty() {
            let _ = writeln!(o, "  none");
        }
        for s in &cl.services {
            let mode = match s.options.mode() {
                ServiceMode::InMulti => "in_multi",
                ServiceMode::InNoalias => "in_noalias",
                ServiceMode::InSingle => "in_single",
            };
            let mut extra = Vec::new();
            for (on, n) in [
                (s.options.in_nolocal, "in_nolocal"),
                (s.options.out_alias, "out_alias"),
                (s.options.static_port, "static"),
            ] {
                if on {
                    extra.push(n);
                }
            }
            let _ = writeln!(
                o,
                "  {:<14} {:>5}/{:<4} {:<10} {}",
                s.name,
                s.port,
                s.proto.name(),
                mode,
                extra.join(",")
            );
        }
    }
    o
}

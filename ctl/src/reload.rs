//! A configuration reload (issue 11: SIGHUP, `cluamgr --reload`): the new configuration's
//! live part (members, aliases, joins and weights, services, resvok) merged onto the state in
//! force, and what changed, in words. No I/O: aliasd reads and validates the file
//! (`clua_lb::config`), refuses changed restart-only keys, and hands the parsed state to
//! [`crate::plane::ControlPlane::reload`], which calls [`merge`] and publishes the result as
//! a new snapshot, all or nothing.
//!
//! **Member ids stay put.** A member's id is its index in `cluster.members`, and the workers'
//! connection tables name members by id: a renumbered member would take another's
//! established connections. So a member the new file keeps keeps its index, a new member
//! takes the slot of a removed one or goes at the end, and a removed member whose slot no new
//! member takes is kept as a *retired* placeholder ([`is_retired`]): down, in no alias, never
//! shown. Its established connections then find their member down and are re-selected (CA3),
//! as when a member goes down. A later reload that adds a member of that name gives it back
//! its slot.
//!
//! A member whose address, port, encapsulation and configured MAC are unchanged keeps its
//! state in force (a MAC learned by ARP, up/down, listening ports), so a reload that only
//! changes weights disturbs nothing.

use std::collections::{BTreeMap, BTreeSet};

use crate::apply::ControlState;
use crate::model::{AliasSpec, Cluster, MemberMac, MemberSpec};

/// The configured MAC of a retired member slot: locally administered, never a real member's
/// (with it the slot needs no ARP, [`crate::neighbors`]).
pub const RETIRED_MAC: [u8; 6] = [0x02, 0xc1, 0x0a, 0xde, 0xad, 0x00];

/// Whether `m` is a retired placeholder (see the module docs).
pub fn is_retired(m: &MemberSpec) -> bool {
    !m.up && !m.agent && m.mac == MemberMac::Configured(RETIRED_MAC)
}

/// Why a reload cannot be applied live. Nothing was changed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReloadRefusal {
    /// The set of members that run the member agent changed: the advert tracker is built at
    /// start (restart aliasd to change it).
    #[error("members running the agent changed ({0}): needs a restart of aliasd")]
    AgentMembers(String),
    /// More member slots than the workers' per-member counters cover.
    #[error("{slots} member slots (retired ones included) but the workers count {capacity}: needs a restart of aliasd")]
    TooManyMembers {
        /// Slots the merged configuration needs.
        slots: usize,
        /// Slots the counters have.
        capacity: usize,
    },
}

/// The fields of a member that, unchanged, let it keep its state in force.
fn same_member(a: &MemberSpec, b: &MemberSpec) -> bool {
    a.port == b.port
        && a.address == b.address
        && a.encap == b.encap
        && a.mac.configured() == b.mac.configured()
}

fn member_change(a: &MemberSpec, b: &MemberSpec) -> Vec<String> {
    let mut what = Vec::new();
    if a.port != b.port {
        what.push(format!("port {} -> {}", a.port, b.port));
    }
    if a.address != b.address {
        what.push(format!("address {} -> {}", a.address, b.address));
    }
    if a.encap != b.encap {
        what.push("encap changed".to_string());
    }
    if a.mac.configured() != b.mac.configured() {
        let f =
            |m: Option<[u8; 6]>| m.map_or_else(|| "by ARP".into(), |m| crate::model::fmt_mac(&m));
        what.push(format!(
            "mac {} -> {}",
            f(a.mac.configured()),
            f(b.mac.configured())
        ));
    }
    what
}

/// Merges the new configuration `new` onto the state in force `old` (see the module docs) and
/// says what changed, one line each (empty: nothing). `capacity` is the member slots the
/// workers' counters cover.
///
/// # Errors
/// [`ReloadRefusal`]: the change needs a restart.
pub fn merge(
    old: &ControlState,
    new: ControlState,
    capacity: usize,
) -> Result<(ControlState, Vec<String>), ReloadRefusal> {
    let mut changes = Vec::new();
    let agents = |c: &Cluster| -> BTreeSet<String> {
        c.members
            .iter()
            .filter(|m| m.agent)
            .map(|m| m.name.clone())
            .collect()
    };
    let (was, now) = (agents(&old.cluster), agents(&new.cluster));
    if was != now {
        let diff: Vec<String> = was
            .symmetric_difference(&now)
            .map(|n| n.to_string())
            .collect();
        return Err(ReloadRefusal::AgentMembers(diff.join(", ")));
    }
    let ControlState {
        cluster: mut next,
        services_file,
        resvok,
    } = new;
    // Members: old slots first, by name.
    let file_order: Vec<String> = next.members.iter().map(|m| m.name.clone()).collect();
    let mut incoming: BTreeMap<String, MemberSpec> = next
        .members
        .drain(..)
        .map(|m| (m.name.clone(), m))
        .collect();
    let mut members: Vec<Option<MemberSpec>> = Vec::new();
    for o in &old.cluster.members {
        match incoming.remove(&o.name) {
            Some(n) if is_retired(o) => {
                changes.push(format!("member {}: added (back in its old slot)", n.name));
                members.push(Some(n));
            }
            Some(n) if same_member(o, &n) => {
                members.push(Some(MemberSpec {
                    mac: if n.mac.configured().is_some() {
                        n.mac
                    } else {
                        o.mac
                    },
                    up: o.up,
                    listening: o.listening.clone(),
                    ..n
                }));
            }
            Some(n) => {
                changes.push(format!(
                    "member {}: {}",
                    n.name,
                    member_change(o, &n).join(", ")
                ));
                members.push(Some(n));
            }
            // Free for a new member; else stays retired (below).
            None if is_retired(o) => members.push(None),
            None => {
                changes.push(format!(
                    "member {}: removed (its connections are re-selected)",
                    o.name
                ));
                members.push(None);
            }
        }
    }
    // New members fill the freed slots, then go at the end, in file order.
    for name in file_order {
        let Some(m) = incoming.remove(&name) else {
            continue;
        };
        changes.push(format!(
            "member {}: added ({} via {})",
            m.name, m.address, m.port
        ));
        match members.iter_mut().find(|s| s.is_none()) {
            Some(slot) => *slot = Some(m),
            None => members.push(Some(m)),
        }
    }
    next.members = members
        .into_iter()
        .enumerate()
        .map(|(i, m)| {
            m.unwrap_or_else(|| {
                let o = &old.cluster.members[i];
                MemberSpec {
                    up: false,
                    agent: false,
                    listening: None,
                    mac: MemberMac::Configured(RETIRED_MAC),
                    ..o.clone()
                }
            })
        })
        .collect();
    if next.members.len() > capacity {
        return Err(ReloadRefusal::TooManyMembers {
            slots: next.members.len(),
            capacity,
        });
    }
    // Aliases: those kept in their old order (their counters and round-robin cursors are by
    // position), new ones after.
    let old_pos: BTreeMap<&str, usize> = old
        .cluster
        .aliases
        .iter()
        .enumerate()
        .map(|(i, a)| (a.name.as_str(), i))
        .collect();
    next.aliases
        .sort_by_key(|a| old_pos.get(a.name.as_str()).copied().unwrap_or(usize::MAX));
    alias_changes(&old.cluster, &next, &mut changes);
    service_changes(&old.cluster, &next, &mut changes);
    if old.cluster.default_alias != next.default_alias {
        changes.push(format!(
            "default alias {} -> {}",
            old.cluster.default_alias, next.default_alias
        ));
    }
    if old.resvok != resvok {
        changes.push(format!("resvok {} -> {resvok}", old.resvok));
    }
    if old.services_file != services_file {
        changes.push(format!(
            "services_file {} -> {}",
            shown(&old.services_file),
            shown(&services_file)
        ));
    }
    Ok((
        ControlState {
            cluster: next,
            services_file,
            resvok,
        },
        changes,
    ))
}

fn shown(p: &Option<std::path::PathBuf>) -> String {
    p.as_ref()
        .map_or_else(|| "none".into(), |p| p.display().to_string())
}

fn join_words(j: &crate::model::JoinSpec) -> String {
    format!(
        "selw={},selp={}{}",
        j.selw,
        j.selp,
        if j.joined { "" } else { ",left" }
    )
}

fn alias_changes(old: &Cluster, new: &Cluster, changes: &mut Vec<String>) {
    for a in &new.aliases {
        let Some(o) = old.aliases.iter().find(|o| o.name == a.name) else {
            changes.push(format!("alias {} {}: added", a.name, a.address));
            continue;
        };
        let mut what = Vec::new();
        if o.address != a.address {
            what.push(format!("address {} -> {}", o.address, a.address));
        }
        if o.rpri != a.rpri {
            what.push(format!("rpri {} -> {}", o.rpri, a.rpri));
        }
        if o.virtual_subnet != a.virtual_subnet || o.mask != a.mask {
            what.push("virtual/mask changed".into());
        }
        if o.vmac != a.vmac {
            what.push(format!("vmac {} -> {}", o.vmac, a.vmac));
        }
        for j in &a.members {
            match o.members.iter().find(|p| p.member == j.member) {
                None => what.push(format!("{} joined ({})", j.member, join_words(j))),
                Some(p) if (p.selw, p.selp, p.joined) != (j.selw, j.selp, j.joined) => what.push(
                    format!("{} {} -> {}", j.member, join_words(p), join_words(j)),
                ),
                Some(_) => {}
            }
        }
        for p in &o.members {
            if !a.members.iter().any(|j| j.member == p.member) {
                what.push(format!("{} no longer a member", p.member));
            }
        }
        if o.members.iter().map(|j| &j.member).collect::<Vec<_>>()
            != a.members.iter().map(|j| &j.member).collect::<Vec<_>>()
            && what.is_empty()
        {
            what.push("join order changed".into());
        }
        if !what.is_empty() {
            changes.push(format!("alias {}: {}", a.name, what.join(", ")));
        }
    }
    for o in &old.aliases {
        if !new.aliases.iter().any(|a: &AliasSpec| a.name == o.name) {
            changes.push(format!("alias {} {}: removed", o.name, o.address));
        }
    }
}

fn service_changes(old: &Cluster, new: &Cluster, changes: &mut Vec<String>) {
    let key = |s: &crate::model::ServiceSpec| (s.port, s.proto.name());
    let words = |s: &crate::model::ServiceSpec| {
        format!(
            "{} {}/{} {}",
            s.name,
            s.port,
            s.proto.name(),
            crate::services::format_options(&s.options)
        )
    };
    for s in &new.services {
        match old.services.iter().find(|o| key(o) == key(s)) {
            None => changes.push(format!("service {}: added", words(s))),
            Some(o) if o != s => {
                changes.push(format!("service {} -> {}", words(o), words(s)));
            }
            Some(_) => {}
        }
    }
    for o in &old.services {
        if !new.services.iter().any(|s| key(s) == key(o)) {
            changes.push(format!("service {}: removed", words(o)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::tests::state;

    fn member(name: &str, last: u8) -> MemberSpec {
        let mut m = state().cluster.members[0].clone();
        m.name = name.into();
        m.address = std::net::Ipv4Addr::new(192, 0, 2, last);
        m.mac = MemberMac::Configured([2, 0, 0, 0, 1, last]);
        m
    }

    /// Issue 11: a weight change keeps every member's id and state and says what changed.
    #[test]
    fn a_weight_change_is_the_only_change_reported() {
        let mut old = state();
        old.cluster.members[1].up = false;
        let mut new = state();
        let web = new
            .cluster
            .aliases
            .iter_mut()
            .find(|a| a.name == "web")
            .unwrap();
        web.members[0].selw = 7;
        let (merged, changes) = merge(&old, new, 1024).unwrap();
        assert_eq!(changes.len(), 1, "{changes:?}");
        assert!(
            changes[0].starts_with("alias web: m1 selw=3,selp=1 -> selw=7,selp=1"),
            "{changes:?}"
        );
        assert!(!merged.cluster.members[1].up, "state in force kept");
        let names: Vec<_> = merged.cluster.members.iter().map(|m| &m.name).collect();
        let before: Vec<_> = old.cluster.members.iter().map(|m| &m.name).collect();
        assert_eq!(names, before);
        let (_, none) = merge(&old, old.clone(), 1024).unwrap();
        assert!(none.is_empty(), "{none:?}");
    }

    /// Member ids are stable: a removed member's slot is retired (or taken by a new member),
    /// never given to a kept member.
    #[test]
    fn kept_members_keep_their_ids() {
        let old = state();
        let n = old.cluster.members.len();
        assert!(n >= 3);
        let mut new = old.clone();
        let removed = new.cluster.members.remove(1).name;
        for a in &mut new.cluster.aliases {
            a.members.retain(|j| j.member != removed);
        }
        let (merged, changes) = merge(&old, new.clone(), 1024).unwrap();
        assert_eq!(merged.cluster.members.len(), n);
        assert!(is_retired(&merged.cluster.members[1]));
        assert_eq!(merged.cluster.members[2].name, old.cluster.members[2].name);
        assert!(
            changes
                .iter()
                .any(|c| c
                    == &format!("member {removed}: removed (its connections are re-selected)")),
            "{changes:?}"
        );
        assert!(merged.cluster.validate().is_ok());
        // A new member takes the free slot; the old name comes back to its slot later.
        new.cluster.members.push(member("m9", 99));
        let (merged2, changes) = merge(&merged, new, 1024).unwrap();
        assert_eq!(merged2.cluster.members[1].name, "m9");
        assert_eq!(merged2.cluster.members.len(), n);
        assert!(
            changes.iter().any(|c| c.starts_with("member m9: added")),
            "{changes:?}"
        );
        let (back, _) = merge(&merged, old.clone(), 1024).unwrap();
        assert_eq!(back.cluster.members, old.cluster.members);
    }

    #[test]
    fn too_many_members_or_changed_agents_need_a_restart() {
        let old = state();
        let mut new = old.clone();
        new.cluster.members.push(member("m9", 99));
        let e = merge(&old, new, old.cluster.members.len()).unwrap_err();
        assert!(matches!(e, ReloadRefusal::TooManyMembers { .. }), "{e}");
        let mut new = old.clone();
        new.cluster.members[0].agent = !new.cluster.members[0].agent;
        let e = merge(&old, new, 1024).unwrap_err();
        assert!(e.to_string().contains("needs a restart"), "{e}");
    }
}

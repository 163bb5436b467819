//! Proxy-ARP master election for common-subnet aliases (CA4, seed 000 §6.6.2, §6.10; placement
//! at fallover PH1, seed 003). A pure function: every router runs [`elect`] over the same views
//! (its own and the ones its peers announced, docs/router-protocol.md) and the same current
//! masters, and so computes the same masters without any further exchange.
//!
//! Rules, for each alias any live router specifies or joins:
//!
//! 1. **Eligible** routers are the live routers (present in the views) that specify or join the
//!    alias and have at least one client-facing interface up on the alias's subnet. An alias with
//!    no eligible router has no master (nobody answers ARP for it).
//! 2. **Incumbency** (PH1, "no automatic re-balancing"): the current master keeps the alias if it
//!    is still eligible and no eligible router has a strictly higher rpri. So a router that
//!    returns with an equal rpri takes nothing; with a strictly higher rpri it takes the alias
//!    (CA4: the highest rpri answers). A master that is gone, no longer specifies the alias, or
//!    has no up interface on its subnet loses it.
//! 3. Otherwise the **highest rpri** among the eligible routers wins; ties are broken by the
//!    PowerHA rule (PH1): the router currently master for the fewest aliases, then the one whose
//!    first up interface name (byte order) comes first alphabetically, then the node name.
//!
//! Determinism (the invariant every router relies on): the result depends only on the *set* of
//! views and the current masters, never on the order they were learnt in. The views are a
//! [`BTreeMap`] keyed by node name, and the "fewest aliases" count is computed in one fixed
//! order: first every alias kept by incumbency counts for its master, then the remaining aliases
//! are assigned in ascending address order, each assignment counting at once for the next. Two
//! routers with the same views and the same current masters therefore compute identical results.
//!

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

/// What one router says about one alias it specifies or joins.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AliasView {
    /// The router's rpri for the alias (`RPRI_RANGE`; higher wins).
    pub rpri: u32,
    /// Its client-facing interfaces that are up and on the alias's subnet (any order). Empty: not
    /// eligible for this alias.
    pub up_interfaces: Vec<String>,
}

impl AliasView {
    /// The interface name that comes first alphabetically (byte order), if any is up.
    fn first_interface(&self) -> Option<&str> {
        self.up_interfaces.iter().map(String::as_str).min()
    }
}

/// What one live router says: the aliases it specifies or joins.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RouterView {
    /// Per alias, its rpri and up interfaces.
    pub aliases: BTreeMap<Ipv4Addr, AliasView>,
}

/// The views of every live router, keyed by node name (this router's own included).
pub type Views = BTreeMap<String, RouterView>;

/// Alias → node name of its proxy-ARP master. Aliases without a master are absent.
pub type Masters = BTreeMap<Ipv4Addr, String>;

/// Elects the proxy-ARP master of every alias from the live routers' `views` and the `current`
/// masters (module docs for the rules and the determinism invariant). `current` may name routers
/// that are gone and aliases nobody specifies any more; they are ignored.
pub fn elect(views: &Views, current: &Masters) -> Masters {
    // Every alias any live router specifies, in address order, with its eligible routers in node
    // name order.
    let mut eligible: BTreeMap<Ipv4Addr, Vec<(&str, &AliasView)>> = BTreeMap::new();
    for (node, view) in views {
        for (&alias, a) in &view.aliases {
            if a.first_interface().is_some() {
                eligible.entry(alias).or_default().push((node.as_str(), a));
            }
        }
    }

    let mut masters = Masters::new();
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    let mut open = Vec::new();
    for (&alias, candidates) in &eligible {
        // `eligible` only holds aliases with at least one candidate.
        let best = candidates.iter().map(|(_, a)| a.rpri).max().unwrap_or(0);
        let kept = current.get(&alias).and_then(|m| {
            candidates
                .iter()
                .find(|(n, a)| *n == m.as_str() && a.rpri == best)
                .map(|(n, _)| *n)
        });
        match kept {
            Some(n) => {
                masters.insert(alias, n.to_string());
                *count.entry(n).or_default() += 1;
            }
            None => open.push((alias, best, candidates)),
        }
    }
    for (alias, best, candidates) in open {
        let winner = candidates
            .iter()
            .filter(|(_, a)| a.rpri == best)
            .min_by(|(n1, a1), (n2, a2)| {
                let c1 = count.get(n1).copied().unwrap_or(0);
                let c2 = count.get(n2).copied().unwrap_or(0);
                (c1, a1.first_interface(), *n1).cmp(&(c2, a2.first_interface(), *n2))
            })
            .map(|(n, _)| *n);
        if let Some(n) = winner {
            masters.insert(alias, n.to_string());
            *count.entry(n).or_default() += 1;
        }
    }
    masters
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> Ipv4Addr {
        Ipv4Addr::new(198, 51, 100, last)
    }

    fn view(aliases: &[(u8, u32, &[&str])]) -> RouterView {
        RouterView {
            aliases: aliases
                .iter()
                .map(|&(a, rpri, ifs)| {
                    (
                        ip(a),
                        AliasView {
                            rpri,
                            up_interfaces: ifs.iter().map(|s| s.to_string()).collect(),
                        },
                    )
                })
                .collect(),
        }
    }

    fn views(rs: &[(&str, RouterView)]) -> Views {
        rs.iter().map(|(n, v)| (n.to_string(), v.clone())).collect()
    }

    fn masters(ms: &[(u8, &str)]) -> Masters {
        ms.iter().map(|&(a, n)| (ip(a), n.to_string())).collect()
    }

    // CA4: the highest rpri answers.
    #[test]
    fn highest_rpri_wins() {
        let v = views(&[
            ("r1", view(&[(1, 10, &["eth0"])])),
            ("r2", view(&[(1, 100, &["eth0"])])),
        ]);
        assert_eq!(elect(&v, &Masters::new()), masters(&[(1, "r2")]));
        // Even against an incumbent with a lower rpri.
        assert_eq!(elect(&v, &masters(&[(1, "r1")])), masters(&[(1, "r2")]));
    }

    // PH1 tie-break 1: the router master for the fewest aliases.
    #[test]
    fn tie_fewest_aliases() {
        // r1 keeps alias 1 by incumbency; alias 2 ties at rpri 5 and goes to r2 (0 aliases), even
        // though r1 comes first by interface and by name.
        let v = views(&[
            ("r1", view(&[(1, 5, &["a0"]), (2, 5, &["a0"])])),
            ("r2", view(&[(1, 5, &["b0"]), (2, 5, &["b0"])])),
        ]);
        assert_eq!(
            elect(&v, &masters(&[(1, "r1")])),
            masters(&[(1, "r1"), (2, "r2")])
        );
        // Without incumbents, counts build up in address order: 1 -> r1 (interface a0), 2 -> r2.
        assert_eq!(elect(&v, &Masters::new()), masters(&[(1, "r1"), (2, "r2")]));
        // 4 aliases over 3 routers with equal rpri spread 2/1/1 (issue 8's lab case).
        let all: &[(u8, u32, &[&str])] = &[
            (1, 1, &["eth0"]),
            (2, 1, &["eth0"]),
            (3, 1, &["eth0"]),
            (4, 1, &["eth0"]),
        ];
        let v = views(&[("ra", view(all)), ("rb", view(all)), ("rc", view(all))]);
        assert_eq!(
            elect(&v, &Masters::new()),
            masters(&[(1, "ra"), (2, "rb"), (3, "rc"), (4, "ra")])
        );
    }

    // PH1 fallover (the example in docs/router-protocol.md): a dead router's alias goes to the
    // survivor master for the fewest aliases, and nothing moves back when it returns.
    #[test]
    fn fallover_and_return_of_an_equal_router() {
        let all: &[(u8, u32, &[&str])] = &[
            (1, 1, &["eth0"]),
            (2, 1, &["eth0"]),
            (3, 1, &["eth0"]),
            (4, 1, &["eth0"]),
        ];
        let three = views(&[("ra", view(all)), ("rb", view(all)), ("rc", view(all))]);
        let m = elect(&three, &Masters::new());
        let two = views(&[("ra", view(all)), ("rc", view(all))]);
        let after = elect(&two, &m);
        assert_eq!(
            after,
            masters(&[(1, "ra"), (2, "rc"), (3, "rc"), (4, "ra")])
        );
        assert_eq!(elect(&three, &after), after);
    }

    // PH1 tie-break 2: the first interface name in alphabetical order.
    #[test]
    fn tie_first_interface_name() {
        let v = views(&[
            ("r1", view(&[(1, 5, &["eth1", "eth9"])])),
            ("r2", view(&[(1, 5, &["eth3", "eth0"])])),
        ]);
        assert_eq!(elect(&v, &Masters::new()), masters(&[(1, "r2")]));
    }

    // PH1 tie-break 3: the node name.
    #[test]
    fn tie_node_name() {
        let v = views(&[
            ("rb", view(&[(1, 5, &["eth0"])])),
            ("ra", view(&[(1, 5, &["eth0"])])),
        ]);
        assert_eq!(elect(&v, &Masters::new()), masters(&[(1, "ra")]));
    }

    // PH1: no automatic re-balancing; an equal rpri does not take an alias from its master.
    #[test]
    fn incumbent_keeps_on_equal_rpri() {
        let v = views(&[
            ("ra", view(&[(1, 5, &["eth0"])])),
            ("rz", view(&[(1, 5, &["eth9"])])),
        ]);
        assert_eq!(elect(&v, &masters(&[(1, "rz")])), masters(&[(1, "rz")]));
    }

    #[test]
    fn master_that_is_gone_or_left_or_down_loses() {
        let v = views(&[
            ("r1", view(&[(1, 5, &["eth0"])])),
            ("r2", view(&[(2, 5, &["eth0"]), (3, 5, &[])])),
            (
                "r3",
                view(&[(1, 5, &["eth1"]), (2, 5, &["eth1"]), (3, 5, &["eth1"])]),
            ),
        ]);
        // Alias 1's master r9 is not live; alias 2's r1 no longer specifies it; alias 3's r2 has no
        // up interface on its subnet.
        let cur = masters(&[(1, "r9"), (2, "r1"), (3, "r2")]);
        assert_eq!(elect(&v, &cur), masters(&[(1, "r1"), (2, "r2"), (3, "r3")]));
    }

    #[test]
    fn no_eligible_router_no_master() {
        let v = views(&[("r1", view(&[(1, 5, &[])]))]);
        assert_eq!(elect(&v, &masters(&[(1, "r1"), (7, "r1")])), Masters::new());
        assert_eq!(elect(&Views::new(), &masters(&[(1, "r1")])), Masters::new());
    }

    use crate::test_rng::Rng;

    const NODES: [&str; 5] = ["r0", "r1", "r2", "r3", "r4"];
    const IFS: [&str; 4] = ["eth0", "eth1", "bond0", "vlan7"];

    fn random_views(rng: &mut Rng) -> Views {
        let mut v = Views::new();
        for n in NODES.iter().take(1 + rng.below(5) as usize) {
            let mut r = RouterView::default();
            for a in 1..=(1 + rng.below(8) as u8) {
                if rng.below(4) == 0 {
                    continue;
                }
                // Few distinct rpris, so ties are common.
                let rpri = rng.below(3) as u32 * 10;
                let ifs = IFS
                    .iter()
                    .filter(|_| rng.below(3) != 0)
                    .map(|s| s.to_string())
                    .collect();
                r.aliases.insert(
                    ip(a),
                    AliasView {
                        rpri,
                        up_interfaces: ifs,
                    },
                );
            }
            v.insert(n.to_string(), r);
        }
        v
    }

    fn random_masters(rng: &mut Rng) -> Masters {
        let mut m = Masters::new();
        for a in 1..=8 {
            if rng.below(2) == 0 {
                // Sometimes a node that is not live (index 5 clamps to r4, which may be absent).
                m.insert(ip(a), NODES[rng.below(6).min(4) as usize].to_string());
            }
        }
        m
    }

    fn eligible(v: &Views, alias: Ipv4Addr) -> Vec<(&str, u32)> {
        v.iter()
            .filter_map(|(n, r)| {
                r.aliases
                    .get(&alias)
                    .filter(|a| !a.up_interfaces.is_empty())
                    .map(|a| (n.as_str(), a.rpri))
            })
            .collect()
    }

    const TRIALS: usize = 3000;

    #[test]
    fn prop_same_input_same_result_whatever_the_order() {
        let mut rng = Rng(0x5EED_0001);
        for _ in 0..TRIALS {
            let v = random_views(&mut rng);
            let cur = random_masters(&mut rng);
            let want = elect(&v, &cur);
            // Each router builds its views in the order it learnt them; interface lists arrive in
            // any order too.
            let mut entries: Vec<_> = v.clone().into_iter().collect();
            entries.reverse();
            let rebuilt: Views = entries
                .into_iter()
                .map(|(n, mut r)| {
                    for a in r.aliases.values_mut() {
                        a.up_interfaces.reverse();
                    }
                    (n, r)
                })
                .collect();
            assert_eq!(elect(&rebuilt, &cur), want);
            assert_eq!(elect(&v, &cur), want);
        }
    }

    #[test]
    fn prop_master_is_eligible_with_max_rpri_and_every_eligible_alias_has_one() {
        let mut rng = Rng(0x5EED_0002);
        for _ in 0..TRIALS {
            let v = random_views(&mut rng);
            let cur = random_masters(&mut rng);
            let m = elect(&v, &cur);
            let aliases: std::collections::BTreeSet<_> =
                v.values().flat_map(|r| r.aliases.keys().copied()).collect();
            for &a in &aliases {
                let el = eligible(&v, a);
                let best = el.iter().map(|&(_, p)| p).max();
                match m.get(&a) {
                    // One master per alias: a map; it is eligible and has the max rpri.
                    Some(n) => {
                        let p = el.iter().find(|&&(e, _)| e == n).map(|&(_, p)| p);
                        assert!(p.is_some(), "{a}: master {n} not eligible in {v:?}");
                        assert_eq!(p, best, "{a}: master {n} without the max rpri");
                        // Incumbency only ever keeps an equal rpri, never a lower one.
                        if let Some(c) = cur.get(&a).filter(|c| *c != n) {
                            let cp = el.iter().find(|&&(e, _)| e == c).map(|&(_, p)| p);
                            assert!(cp.is_none() || cp < best, "{a}: {c} lost on a tie");
                        }
                    }
                    None => assert!(el.is_empty(), "{a}: eligible routers but no master"),
                }
            }
            assert!(m.keys().all(|a| aliases.contains(a)));
            // Stable: electing again from the result changes nothing.
            assert_eq!(elect(&v, &m), m);
        }
    }

    #[test]
    fn prop_removing_a_non_master_moves_nothing() {
        let mut rng = Rng(0x5EED_0003);
        for _ in 0..TRIALS {
            let v = random_views(&mut rng);
            let m = elect(&v, &random_masters(&mut rng));
            for n in v.keys() {
                if m.values().any(|x| x == n) {
                    continue;
                }
                let mut less = v.clone();
                less.remove(n);
                assert_eq!(elect(&less, &m), m, "removing {n} moved an alias");
            }
        }
    }

    #[test]
    fn prop_returning_router_takes_only_strictly_higher() {
        let mut rng = Rng(0x5EED_0004);
        let mut took = 0;
        for _ in 0..TRIALS {
            let v = random_views(&mut rng);
            for (n, r) in &v {
                let mut without = v.clone();
                without.remove(n);
                let before = elect(&without, &Masters::new());
                let after = elect(&v, &before);
                for (&a, m) in &before {
                    let mp = v[m].aliases[&a].rpri;
                    let back = r.aliases.get(&a).filter(|x| !x.up_interfaces.is_empty());
                    match back {
                        Some(x) if x.rpri > mp => {
                            assert_eq!(&after[&a], n, "{a}: {n} with higher rpri took nothing");
                            took += 1;
                        }
                        _ => assert_eq!(&after[&a], m, "{a}: moved to the returning {n}"),
                    }
                }
                // Aliases nobody could serve before go to the returning router.
                for a in after.keys().filter(|a| !before.contains_key(a)) {
                    assert_eq!(&after[a], n);
                }
            }
        }
        assert!(
            took > 0,
            "the generator never made a strictly higher return"
        );
    }
}

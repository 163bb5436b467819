//! A member host needs no DPDK libraries: the clua-member binary links no librte, and nothing
//! in its dependency tree is a DPDK crate (issue 7).

use std::collections::BTreeSet;
use std::process::Command;

const MEMBER_BIN: &str = env!("CARGO_BIN_EXE_clua-member");

/// Crates that bring DPDK (or the router, which links it).
const DPDK_CRATES: &[&str] = &["clua-dpdk", "clua-dpdk-sys", "clua-lb"];

#[test]
fn the_member_binary_links_no_dpdk_library() {
    let out = Command::new("ldd")
        .arg(MEMBER_BIN)
        .output()
        .expect("running ldd (libc-bin)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "ldd {MEMBER_BIN}: {out:?}");
    // ldd really listed the libraries (an empty or failed listing would pass the checks below).
    assert!(text.contains("libc.so"), "ldd {MEMBER_BIN}:\n{text}");
    let dpdk: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("librte") || l.contains("libdpdk"))
        .collect();
    assert!(
        dpdk.is_empty(),
        "clua-member links DPDK libraries:\n{}",
        dpdk.join("\n")
    );
}

/// The packages clua-member depends on, directly or not, from the workspace's Cargo.lock.
fn dependency_tree(lock: &str, root: &str) -> BTreeSet<String> {
    let lock: toml::Table = toml::from_str(lock).expect("Cargo.lock is TOML");
    let packages = lock["package"].as_array().expect("[[package]] entries");
    let deps_of = |name: &str| -> Vec<String> {
        packages
            .iter()
            .filter(|p| p["name"].as_str() == Some(name))
            .flat_map(|p| {
                p.get("dependencies")
                    .and_then(|d| d.as_array())
                    .cloned()
                    .unwrap_or_default()
            })
            // "name" or "name version" (when several versions are locked).
            .filter_map(|d| d.as_str()?.split(' ').next().map(String::from))
            .collect()
    };
    let mut seen = BTreeSet::new();
    let mut todo = vec![root.to_string()];
    while let Some(n) = todo.pop() {
        for d in deps_of(&n) {
            if seen.insert(d.clone()) {
                todo.push(d);
            }
        }
    }
    seen
}

#[test]
fn no_dpdk_crate_in_the_dependency_tree() {
    let lock_path = concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.lock");
    let lock = std::fs::read_to_string(lock_path).expect("the workspace Cargo.lock");
    let tree = dependency_tree(&lock, "clua-member");
    // The walk found the real tree (an empty one would pass the check below).
    assert!(
        tree.contains("clua-ctl") && tree.contains("hmac"),
        "{tree:?}"
    );
    let bad: Vec<_> = DPDK_CRATES.iter().filter(|c| tree.contains(**c)).collect();
    assert!(bad.is_empty(), "clua-member depends on {bad:?}");
    // The same walk does see DPDK under the router.
    assert!(dependency_tree(&lock, "clua-lb").contains("clua-dpdk-sys"));
}

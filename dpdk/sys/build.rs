//! Build script: finds the system DPDK through pkg-config, compiles the C shim for the
//! static-inline fast-path calls, and generates the bindings with bindgen.
//!
//! The compiler flags (`-I...`, `-include rte_config.h`, `-march=...`) come from
//! `pkg-config --cflags libdpdk` and are fed to both `cc` and bindgen, so the shim and the
//! bindings see exactly the configuration the installed DPDK was built with.

use std::env;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=wrapper.h");
    println!("cargo:rerun-if-changed=shim.h");
    println!("cargo:rerun-if-changed=shim.c");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");

    // Link flags come from pkg-config (no hard-coded library list). pkg-config's `--libs`
    // output starts with `-Wl,--as-needed`, which may drop PMD libraries: that is fine since the
    // PMDs are plugins EAL loads at runtime from its plugin directory.
    let dpdk = pkg_config::Config::new()
        .atleast_version("21.11")
        .probe("libdpdk")
        .expect("pkg-config could not find libdpdk (install libdpdk-dev)");
    // `rte_eth_from_rings` lives in the net_ring PMD, which is not in the pkg-config list.
    println!("cargo:rustc-link-lib=rte_net_ring");

    // Every compiler flag pkg-config gives, in order (includes `-include rte_config.h`).
    let cflags = pkg_config_cflags();

    let mut build = cc::Build::new();
    build
        .file("shim.c")
        .include(".")
        .warnings(true)
        .opt_level(3);
    for flag in &cflags {
        build.flag(flag);
    }
    build.compile("clua_dpdk_shim");

    let mut builder = bindgen::Builder::default()
        .header("wrapper.h")
        .clang_args(cflags.iter())
        .clang_arg("-I.")
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .allowlist_function("rte_eal_.*")
        .allowlist_function("rte_eth_.*")
        .allowlist_function("rte_pktmbuf_pool_create")
        .allowlist_function("rte_mempool_free")
        .allowlist_function("rte_mempool_avail_count")
        .allowlist_function("rte_mempool_in_use_count")
        .allowlist_function("rte_ring_create")
        .allowlist_function("rte_ring_free")
        .allowlist_function("rte_lcore_.*")
        .allowlist_function("rte_get_next_lcore")
        .allowlist_function("rte_get_main_lcore")
        .allowlist_function("rte_get_tsc_hz")
        .allowlist_function("rte_strerror")
        .allowlist_function("rte_dev_probe")
        .allowlist_function("rte_dev_remove")
        .allowlist_function("rte_socket_id")
        .allowlist_function("rte_exit")
        .allowlist_function("clua_.*")
        .allowlist_type("rte_mbuf")
        .allowlist_type("clua_mbuf_layout")
        .allowlist_type("rte_eth_conf")
        .allowlist_type("rte_eth_dev_info")
        .allowlist_type("rte_eth_stats")
        .allowlist_type("rte_ether_addr")
        .allowlist_type("rte_eth_rxconf")
        .allowlist_type("rte_eth_txconf")
        .allowlist_type("rte_eth_link")
        .allowlist_var("RTE_.*")
        .allowlist_var("RING_F_.*")
        .allowlist_var("SOCKET_ID_ANY")
        .allowlist_var("LCORE_ID_ANY")
        // Rust never touches mbuf, mempool or ring fields: the shim has accessors (and, for the
        // three fields the fast path reads per packet, wrapper.h's clua_mbuf_layout offsets).
        .opaque_type("rte_mbuf")
        .opaque_type("rte_mempool")
        .opaque_type("rte_ring")
        // The inline fast-path functions are reached through the shim instead.
        .blocklist_function("rte_eth_rx_burst")
        .blocklist_function("rte_eth_tx_burst")
        .blocklist_function("rte_eth_tx_prepare")
        .blocklist_function("rte_eth_rx_queue_count")
        .blocklist_function("rte_eth_rx_descriptor_status")
        .blocklist_function("rte_eth_tx_descriptor_status")
        .blocklist_function("rte_eth_tx_buffer.*")
        .blocklist_function("rte_eth_recycle_mbufs")
        .generate_inline_functions(false)
        .derive_default(true)
        .derive_debug(false)
        .layout_tests(false)
        .prepend_enum_name(false)
        .size_t_is_usize(true);
    // Many DPDK headers carry very long macros bindgen cannot evaluate; keep warnings quiet.
    builder = builder.generate_comments(false);
    let bindings = builder.generate().expect("bindgen failed on wrapper.h");

    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR"));
    bindings
        .write_to_file(out.join("bindings.rs"))
        .expect("could not write bindings.rs");

    // Let dependents find the include path (`DEP_RTE_EAL_INCLUDE`).
    let includes: Vec<String> = dpdk
        .include_paths
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    println!("cargo:include={}", includes.join(":"));
}

/// `pkg-config --cflags libdpdk` split into flags. `-include rte_config.h` is kept as two
/// arguments in order; the pkg-config crate's parsed fields drop it, hence the direct call.
fn pkg_config_cflags() -> Vec<String> {
    let pkg_config = env::var("PKG_CONFIG").unwrap_or_else(|_| "pkg-config".to_string());
    let output = std::process::Command::new(pkg_config)
        .args(["--cflags", "libdpdk"])
        .output()
        .expect("could not run pkg-config");
    assert!(
        output.status.success(),
        "pkg-config --cflags libdpdk failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .expect("pkg-config output is not UTF-8")
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

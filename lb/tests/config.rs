//! aliasd configuration: the golden world loads, and every kind of bad input is rejected with a
//! message naming the field (issue: "bad config exits non-zero with a message naming the
//! problem"; CA1 alias address rules; CA9 option exclusions).

use clua_lb::config::Config;
use clua_pipeline::snapshot::{Encap, MemberId, ServiceMode};

const GOLDEN: &str = include_str!("fixtures/golden.toml");

/// How many aliases the golden configuration has (more than 3, fewer than 102,400).
fn golden_aliases() -> usize {
    GOLDEN.matches("\n[[alias]]\n").count()
}

fn errors(text: &str) -> String {
    match Config::parse(text, "test.toml") {
        Ok(_) => panic!("configuration unexpectedly accepted:\n{text}"),
        Err(e) => e.to_string(),
    }
}

fn assert_rejected(text: &str, needles: &[&str]) {
    let e = errors(text);
    for n in needles {
        assert!(e.contains(n), "error does not mention `{n}`:\n{e}");
    }
    assert!(
        e.starts_with("test.toml: "),
        "error does not name the file:\n{e}"
    );
}

#[test]
fn golden_config_loads_and_builds_the_expected_snapshot() {
    let c = Config::parse(GOLDEN, "golden.toml").unwrap();
    assert_eq!(c.cluster.ports.len(), 3);
    assert_eq!(c.port_devargs[1], "net_null1");
    let macs = [[2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2], [2, 0, 0, 0, 0, 3]];
    let s = c.cluster.snapshot(1, &macs).unwrap();
    // CA1: every member joins the default alias.
    let cluster = &s.aliases[0];
    assert_eq!(cluster.name, "cluster");
    assert_eq!(
        cluster
            .members
            .iter()
            .map(|m| m.member.0)
            .collect::<Vec<_>>(),
        vec![0, 1, 2, 3]
    );
    // CA8: selw 3:2:1 on web.
    let web = &s.aliases[1];
    assert_eq!(
        web.multi_schedule.iter().map(|m| m.0).collect::<Vec<_>>(),
        vec![0, 0, 0, 1, 1, 2]
    );
    assert_eq!(web.single_active, Some(MemberId(0)));
    assert_eq!(s.service_mode(6, 80), ServiceMode::InMulti);
    assert_eq!(s.service_mode(17, 513), ServiceMode::InNoalias);
    assert_eq!(s.service_mode(6, 22), ServiceMode::InSingle);
    assert_eq!(
        s.member(MemberId(3)).unwrap().encap,
        Encap::Vxlan {
            vni: 42,
            inner_mac: [2, 0, 0, 0, 2, 0x81],
            udp_port: 4789
        }
    );
    assert_eq!(c.pipeline.conn_capacity, 4096);
    let args = c.dpdk.eal_args(&c.port_devargs);
    assert!(args.contains(&"--no-pci".to_string()), "{args:?}");
    assert!(
        args.windows(2)
            .any(|w| w[0] == "--vdev" && w[1] == "net_null2"),
        "{args:?}"
    );
}

#[test]
fn unknown_field_is_named_with_its_line() {
    let text = GOLDEN.replace("mtu = 1500", "mtu = 1500\nspeed = 10");
    assert_rejected(&text, &["unknown field `speed`", "line"]);
    let text = GOLDEN.replace("[tables]", "[tables]\nconections = 5");
    assert_rejected(&text, &["unknown field `conections`"]);
}

#[test]
fn broadcast_multicast_and_reserved_alias_addresses_are_rejected() {
    for (addr, needle) in [
        ("255.255.255.255", "limited broadcast"),
        ("198.51.100.255", "broadcast address of port \"client\""),
        ("198.51.100.0", "network address of port \"client\""),
        ("224.0.0.5", "multicast"),
        ("127.0.0.1", "loopback"),
        ("0.0.0.0", "0.0.0.0 cannot be an alias"),
        ("240.0.0.1", "class E"),
        ("192.0.2.50", "interconnect subnet"),
        ("198.51.100.2", "router's own address"),
    ] {
        let text = GOLDEN.replace(
            "address = \"198.51.100.101\"",
            &format!("address = \"{addr}\""),
        );
        assert_rejected(&text, &["alias \"tun\" address", needle]);
    }
    let text = GOLDEN.replace(
        "address = \"198.51.100.101\"",
        "address = \"198.51.100.100\"",
    );
    assert_rejected(&text, &["alias \"tun\" address", "already alias \"web\""]);
    let text = GOLDEN.replace(
        "address = \"198.51.100.101\"",
        "address = \"198.51.100.300\"",
    );
    assert_rejected(&text, &["not an IPv4 address"]);
}

#[test]
fn duplicate_member_and_unknown_port_are_rejected() {
    let text = GOLDEN.replace("name = \"m2\"\nport", "name = \"m1\"\nport");
    assert_rejected(&text, &["member \"m1\"", "duplicate member name"]);
    let text = GOLDEN.replace(
        "name = \"m2\"\nport = \"ic0\"",
        "name = \"m2\"\nport = \"ic9\"",
    );
    assert_rejected(
        &text,
        &["member \"m2\" port", "port \"ic9\" does not exist"],
    );
    let text = GOLDEN.replace(
        "name = \"m2\"\nport = \"ic0\"",
        "name = \"m2\"\nport = \"client\"",
    );
    assert_rejected(&text, &["member \"m2\" port", "not an interconnect"]);
    let text = GOLDEN.replace("{ name = \"m3\" }", "{ name = \"m9\" }");
    assert_rejected(&text, &["alias \"tun\" member \"m9\"", "no such member"]);
    let text = GOLDEN.replace(
        "{ name = \"m3\", selw = 1 },",
        "{ name = \"m1\", selw = 1 },",
    );
    assert_rejected(&text, &["alias \"web\" member \"m1\"", "joined twice"]);
}

#[test]
fn attribute_ranges_are_enforced() {
    let text = GOLDEN.replace("{ name = \"m1\", selw = 3 }", "{ name = \"m1\", selw = 0 }");
    assert_rejected(
        &text,
        &["alias \"web\" member \"m1\" selw", "0 is out of range"],
    );
    let text = GOLDEN.replace(
        "{ name = \"m1\", selw = 3 }",
        "{ name = \"m1\", selw = 101 }",
    );
    assert_rejected(&text, &["selw", "101 is out of range"]);
    let text = GOLDEN.replace("[cluster]\n", "[cluster]\nmax_aliases = 3\n");
    assert_rejected(
        &text,
        &[&format!(
            "{} aliases configured but cluster.max_aliases is 3",
            golden_aliases()
        )],
    );
    let text = GOLDEN.replace("[cluster]\n", "[cluster]\nmax_aliases = 102401\n");
    assert_rejected(&text, &["cluster.max_aliases", "out of range"]);
    let text = GOLDEN.replace("default_alias = \"cluster\"", "default_alias = \"nope\"");
    assert_rejected(
        &text,
        &["cluster.default_alias", "no alias is named \"nope\""],
    );
    let text = GOLDEN.replace("vni = 42", "vni = 16777216");
    assert_rejected(&text, &["member \"m4\" vni", "24 bits"]);
    let text = GOLDEN.replace("vni = 42\n", "");
    assert_rejected(&text, &["member[3] \"m4\" vni", "required"]);
    let text = GOLDEN.replace("encap = \"ipip\"", "encap = \"gre\"");
    assert_rejected(
        &text,
        &["member[2] \"m3\" encap", "`gre` is not l2, ipip or vxlan"],
    );
    let text = GOLDEN.replace("mac = \"02:00:00:00:01:01\"", "mac = \"02:00:00:00:01\"");
    assert_rejected(&text, &["member[0] \"m1\" mac", "not a MAC address"]);
}

#[test]
fn service_options_obey_ca9_exclusions() {
    let text = GOLDEN.replace(
        "options = [\"in_multi\"]\n\n[[service]]\nname = \"domain\"",
        "options = [\"in_multi\", \"in_single\"]\n\n[[service]]\nname = \"domain\"",
    );
    assert_rejected(
        &text,
        &[
            "service \"http\" (80/tcp) options",
            "in_single and in_multi are mutually exclusive",
        ],
    );
    let text = GOLDEN.replace(
        "options = [\"in_noalias\", \"static\"]",
        "options = [\"in_noalias\", \"in_nolocal\"]",
    );
    assert_rejected(
        &text,
        &[
            "service \"who\" (513/udp) options",
            "in_nolocal and in_noalias",
        ],
    );
    let text = GOLDEN.replace(
        "options = [\"in_noalias\", \"static\"]",
        "options = [\"in_fast\"]",
    );
    assert_rejected(
        &text,
        &[
            "service[3] \"who\" options",
            "unknown service option `in_fast`",
        ],
    );
    let text = GOLDEN.replace("port = 513\nproto = \"udp\"", "port = 513\nproto = \"tcp\"");
    assert_rejected(&text, &["service \"who\" (513/tcp)", "listed twice"]);
    let text = GOLDEN.replace("port = 53\nproto = \"udp\"", "port = 53\nproto = \"sctp\"");
    assert_rejected(
        &text,
        &["service[1] \"domain\" proto", "`sctp` is not tcp or udp"],
    );
}

#[test]
fn dpdk_safety_and_sizes() {
    let text = GOLDEN.replace("devargs = \"net_null1\"", "devargs = \"0000:00:1f.6\"");
    assert_rejected(&text, &["port[1] \"ic0\" devargs", "not in dpdk.pci_allow"]);
    let text = GOLDEN.replace("devargs = \"net_null1\"", "devargs = \"net_null0\"");
    assert_rejected(&text, &["device `net_null0` is already port \"client\""]);
    let text = GOLDEN.replace("worker_lcores = [1]", "worker_lcores = [0]");
    assert_rejected(&text, &["dpdk.worker_lcores", "already dpdk.main_lcore"]);
    let text = GOLDEN.replace("connections = 4096", "connections = 2");
    assert_rejected(&text, &["tables.connections", "out of range"]);
    // Every problem is reported, not just the first.
    let text = GOLDEN
        .replace("connections = 4096", "connections = 2")
        .replace("vni = 42", "vni = 16777216");
    let e = errors(&text);
    assert!(e.contains("tables.connections") && e.contains("vni"), "{e}");
}

#[test]
fn refusal_rate_limit_defaults_and_can_be_set() {
    let c = Config::parse(GOLDEN, "golden.toml").unwrap();
    assert_eq!(c.pipeline.refusals_per_sec, 100);
    let c = Config::parse(
        &format!("{GOLDEN}\n[limits]\nrefusals_per_sec = 0\n"),
        "t.toml",
    )
    .unwrap();
    assert_eq!(c.pipeline.refusals_per_sec, 0);
    assert_rejected(
        &format!("{GOLDEN}\n[limits]\nrst_per_sec = 5\n"),
        &["unknown field `rst_per_sec`"],
    );
}

#[test]
fn clu_alias_config_and_clua_services_files_are_applied_at_start() {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("files-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let services = dir.join("clua_services");
    std::fs::write(
        &services,
        "http 80/tcp in_multi\nssh 22/tcp in_single\nwho 513/udp in_noalias,static\n",
    )
    .unwrap();
    let boot = dir.join("clu_alias.config");
    std::fs::write(
        &boot,
        "# this router's boot-time commands\n\
         /usr/sbin/cluamgr -a alias=web,rpri=100\n\
         /usr/sbin/cluamgr -a alias=web,selw=5 --member m2\n\
         cluamgr -r resvok\n",
    )
    .unwrap();
    let without_services = GOLDEN.split("[[service]]").next().unwrap().to_string();
    let text = format!(
        "{without_services}\n[control]\nservices_file = \"{}\"\nalias_config = \"{}\"\n",
        services.display(),
        boot.display()
    );
    let c = Config::parse(&text, "t.toml").unwrap();
    let web = c.cluster.aliases.iter().find(|a| a.name == "web").unwrap();
    assert_eq!(web.rpri, 100);
    assert_eq!(
        web.members.iter().find(|j| j.member == "m2").unwrap().selw,
        5
    );
    assert!(c.resvok);
    assert_eq!(c.cluster.services.len(), 3);
    let s = c
        .cluster
        .snapshot(
            1,
            &[[2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2], [2, 0, 0, 0, 0, 3]],
        )
        .unwrap();
    assert_eq!(s.service_mode(6, 22), ServiceMode::InSingle);
    assert_eq!(s.service_mode(17, 513), ServiceMode::InNoalias);

    // A bad boot line stops start-up, naming the file and line.
    std::fs::write(
        &boot,
        "cluamgr -a alias=web,rpri=100\ncluamgr -a alias=web,join --member m9\n",
    )
    .unwrap();
    assert_rejected(&text, &[&format!("{}:2: no member \"m9\"", boot.display())]);
    std::fs::write(&boot, "cluamgr -s\n").unwrap();
    assert_rejected(&text, &["clu_alias.config:1", "boot-time"]);
    // Services from the file and from [[service]] at once are ambiguous.
    let both = format!(
        "{GOLDEN}\n[control]\nservices_file = \"{}\"\n",
        services.display()
    );
    assert_rejected(&both, &["control.services_file", "not both"]);
    std::fs::write(&services, "http 80/tcp in_multi\nhttp 80/tcp in_single\n").unwrap();
    let only_services = format!(
        "{without_services}\n[control]\nservices_file = \"{}\"\n",
        services.display()
    );
    assert_rejected(
        &only_services,
        &["clua_services:2", "80/tcp is already listed on line 1"],
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_alias_limit_is_102400_with_o1_lookup() {
    // CA1: up to 102,400 aliases. Addresses from 100.64.0.0/10 are only data here: no packet is
    // sent to them.
    let mut text = GOLDEN.replace("[cluster]\n", "[cluster]\nmax_aliases = 102400\n");
    for i in 0..(102_400 - golden_aliases()) {
        let a = 0x6440_0000u32 + i as u32 + 1;
        text += &format!(
            "\n[[alias]]\nname = \"a{i}\"\naddress = \"{}\"\n",
            std::net::Ipv4Addr::from(a)
        );
    }
    let c = Config::parse(&text, "t.toml").unwrap();
    assert_eq!(c.cluster.aliases.len(), 102_400);
    let s = c
        .cluster
        .snapshot(
            1,
            &[[2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2], [2, 0, 0, 0, 0, 3]],
        )
        .unwrap();
    let added = 102_400 - golden_aliases();
    let last = 0x6440_0000u32 + added as u32;
    assert_eq!(
        s.alias(s.alias_by_addr(last).unwrap()).name,
        format!("a{}", added - 1)
    );
    assert!(s.alias_by_addr(last + 1).is_none());
    let more = text + "\n[[alias]]\nname = \"one-too-many\"\naddress = \"100.66.0.1\"\n";
    assert_rejected(
        &more,
        &["102401 aliases configured but cluster.max_aliases is 102400"],
    );
}

/// Issue 7: a member named `m 1` was accepted and could never come up (its adverts cannot carry
/// the name). Port, member and alias names follow the one rule of `clua_ctl::name`.
#[test]
fn names_follow_the_shared_rule_and_the_field_is_named() {
    let text = GOLDEN
        .replace("name = \"m2\"\nport", "name = \"m 1\"\nport")
        .replace(
            "{ name = \"m2\", selw = 2 }",
            "{ name = \"m 1\", selw = 2 }",
        );
    assert_rejected(
        &text,
        &[
            "member \"m 1\" name",
            "`m 1` is not a name: byte 1 is not a letter, digit, `.`, `_` or `-`",
        ],
    );
    let text = GOLDEN.replace("name = \"ic1\"", "name = \"-ic1\"");
    assert_rejected(
        &text,
        &["port \"-ic1\" name", "starts with a letter or a digit"],
    );
    let text = GOLDEN.replace("name = \"tun\"", "name = \"t/un\"");
    assert_rejected(&text, &["alias \"t/un\" name", "`t/un` is not a name"]);
    let text = GOLDEN.replace(
        "name = \"m2\"\nport",
        &format!("name = \"{}\"\nport", "m".repeat(65)),
    );
    assert_rejected(&text, &["a name is at most 64 bytes, this one has 65"]);
}

/// Deserialise and validate read no file; referenced files are loaded last, and only then refused.
#[test]
fn validation_reads_no_file_and_loading_is_last() {
    let missing = "/nonexistent/clua-test";
    let text = GOLDEN.replacen(
        "name = \"m1\"\nport = \"ic0\"",
        "name = \"m1\"\nagent = true\nport = \"ic0\"",
        1,
    ) + &format!(
        "\n[adverts]\nkey_file = \"{missing}/key\"\n[control]\nalias_config = \"{missing}/boot\"\n"
    );
    let checked = Config::check(&text, "test.toml");
    let valid = match checked {
        Ok(v) => v,
        Err(e) => panic!("validation touched a file or refused good text:\n{e}"),
    };
    assert!(valid.cluster().members.iter().any(|m| m.agent));
    assert_eq!(valid.cluster().advert_port, clua_ctl::advert::ADVERT_PORT);
    // The same text fails only when the files are loaded: the key file first.
    let e = match valid.load_files() {
        Ok(_) => panic!("a missing key file was accepted"),
        Err(e) => e.to_string(),
    };
    assert!(
        e.starts_with("test.toml: adverts.key_file: key file /nonexistent/clua-test/key"),
        "{e}"
    );
    // Without agents, the missing clu_alias.config is what is refused, naming its field.
    let text = format!("{GOLDEN}\n[control]\nalias_config = \"{missing}/boot\"\n");
    assert!(Config::check(&text, "test.toml").is_ok());
    assert_rejected(
        &text,
        &["control.alias_config: /nonexistent/clua-test/boot: cannot read"],
    );
    // Problems are typed: the field and the kind are separate.
    let err = Config::check(
        &GOLDEN.replace("name = \"m2\"\nport", "name = \"m 1\"\nport"),
        "t",
    )
    .unwrap_err();
    assert!(err
        .problems
        .iter()
        .any(|p| matches!(&p.kind, clua_lb::config::ProblemKind::Model(m)
            if m.to_string().starts_with("member \"m 1\" name"))));
}

/// Issue 9: the half-open timeout of SYN entries defaults to 5 s and is range-checked.
#[test]
fn tcp_half_open_ms_defaults_and_is_range_checked() {
    let c = Config::parse(GOLDEN, "golden.toml").unwrap();
    assert_eq!(c.pipeline.tcp_half_open_ms, 5_000);
    let set = |v: &str| GOLDEN.replace("[tables]", &format!("[tables]\ntcp_half_open_ms = {v}"));
    let c = Config::parse(&set("1500"), "golden.toml").unwrap();
    assert_eq!(c.pipeline.tcp_half_open_ms, 1_500);
    assert_eq!(c.pipeline.tcp_idle_ms, 300_000);
    for v in ["99", "60001", "0"] {
        assert_rejected(&set(v), &["tables.tcp_half_open_ms", "out of range"]);
    }
    for v in ["100", "60000"] {
        assert!(Config::parse(&set(v), "golden.toml").is_ok(), "{v}");
    }
}

/// Issue 8: `mac` of a `[[member]]` is optional; without it the router learns it by ARP on the
/// member's port, and until then the member gets no traffic (CA3). A bad `mac` is still named.
#[test]
fn member_mac_is_optional_and_a_bad_one_still_named() {
    use clua_ctl::model::MemberMac;
    let text = GOLDEN
        .replace("mac = \"02:00:00:00:01:01\"\n", "")
        .replace("mac = \"02:00:00:00:01:03\"\n", "");
    let c = Config::parse(&text, "test.toml").unwrap();
    let macs: Vec<MemberMac> = c.cluster.members.iter().map(|m| m.mac).collect();
    assert_eq!(
        macs[..3],
        [
            MemberMac::Unresolved,
            MemberMac::Configured([2, 0, 0, 0, 1, 2]),
            MemberMac::Unresolved
        ]
    );
    let s = c
        .cluster
        .snapshot(
            1,
            &[[2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2], [2, 0, 0, 0, 0, 3]],
        )
        .unwrap();
    let up: Vec<bool> = (0..4).map(|i| s.member(MemberId(i)).unwrap().up).collect();
    assert_eq!(up, [false, true, false, true]);
    // The ipip member without mac is still an ipip member (its outer MAC comes from ARP).
    assert_eq!(s.member(MemberId(2)).unwrap().encap, Encap::Ipip);

    let text = GOLDEN.replace("mac = \"02:00:00:00:01:01\"", "mac = \"02:00:00:00:01\"");
    assert_rejected(&text, &["member[0] \"m1\" mac", "not a MAC address"]);
    let text = GOLDEN.replace("mac = \"02:00:00:00:01:01\"", "mac = \"01:00:5e:00:00:01\"");
    assert_rejected(&text, &["member \"m1\" mac", "multicast MAC"]);
    // Without a mac the address must be on the port's subnet: ARP cannot find a next hop.
    let text = GOLDEN.replace(
        "address = \"192.0.2.141\"\nmac = \"02:00:00:00:02:01\"\n",
        "address = \"192.0.2.41\"\n",
    );
    assert_rejected(
        &text,
        &[
            "member \"m4\" mac",
            "192.0.2.41 is outside port \"ic1\"'s subnet 192.0.2.130/25",
        ],
    );
    // With a configured mac (a next hop's) such an address is fine.
    let text = GOLDEN.replace("address = \"192.0.2.141\"", "address = \"192.0.2.41\"");
    Config::parse(&text, "test.toml").unwrap();
}

/// Issue 8: `[router]`, `[rip]`, `[bfd]` and the alias fields `vmac` and `mask`: defaults,
/// ranges, and every bad value named (validation reads no key file: `Config::check`).
#[test]
fn router_rip_and_bfd_sections_are_validated() {
    let ok = |extra: &str| {
        let text = format!("{GOLDEN}\n{extra}");
        match Config::check(&text, "test.toml") {
            Ok(v) => v,
            Err(e) => panic!("refused:\n{e}\n{extra}"),
        }
    };
    let bad = |extra: &str, needles: &[&str]| {
        let text = format!("{GOLDEN}\n{extra}");
        let e = match Config::check(&text, "test.toml") {
            Ok(_) => panic!("accepted:\n{extra}"),
            Err(e) => e.to_string(),
        };
        for n in needles {
            assert!(e.contains(n), "`{n}` not in:\n{e}");
        }
    };
    ok("[router]\nnode = \"r1\"\nkey_file = \"/k\"\n");
    bad("[router]\nkey_file = \"/k\"\n", &["missing field `node`"]);
    bad(
        "[router]\nnode = \"r 1\"\nkey_file = \"/k\"\n",
        &["router.node"],
    );
    bad(
        "[router]\nnode = \"r1\"\nkey_file = \"/k\"\ninterval_ms = 50\n",
        &["router.interval_ms: 50 is out of range 100..=60000"],
    );
    bad(
        "[router]\nnode = \"r1\"\nkey_file = \"/k\"\ndead_misses = 1\ngarp_count = 0\ngarp_interval_ms = 1\n",
        &[
            "router.dead_misses: 1 is out of range 2..=100",
            "router.garp_count: 0 is out of range 1..=10",
            "router.garp_interval_ms: 1 is out of range 10..=10000",
        ],
    );
    bad(
        "[router]\nnode = \"r1\"\nkey_file = \"/k\"\ninterconnect = \"client\"\n",
        &["router.interconnect: `client` is not an interconnect [[port]] with an address"],
    );
    bad(
        "[router]\nnode = \"r1\"\nkey_file = \"/k\"\nport = 0\n",
        &["router.port: 0 is not a UDP port"],
    );
    ok("[rip]\n");
    ok("[rip]\nports = [\"client\"]\nmode = \"multicast\"\nupdate_secs = 10\njitter_secs = 2\nkey_file = \"/k\"\nkey_id = 7\n");
    bad(
        "[rip]\nmode = \"anycast\"\n",
        &["rip.mode: `anycast` is not broadcast or multicast"],
    );
    ok("[rip]\n[rip.port_modes]\nclient = \"multicast\"\n");
    let c = Config::parse(
        &format!("{GOLDEN}\n[rip]\n[rip.port_modes]\nclient = \"multicast\"\n"),
        "t",
    )
    .unwrap();
    let rip = c.rip.unwrap();
    assert_eq!(rip.ports, ["client"]);
    assert_eq!(rip.modes, [clua_lb::config::RipSendMode::Multicast]);
    let c = Config::parse(&format!("{GOLDEN}\n[rip]\n"), "t").unwrap();
    assert_eq!(
        c.rip.unwrap().modes,
        [clua_lb::config::RipSendMode::Broadcast],
        "the default mode"
    );
    bad(
        "[rip]\n[rip.port_modes]\nclient = \"x\"\nic0 = \"multicast\"\n",
        &[
            "rip.port_modes.client: `x` is not broadcast or multicast",
            "rip.port_modes.ic0: `ic0` is not a client [[port]] with an address",
        ],
    );
    bad(
        "[rip]\nports = [\"ic0\"]\n",
        &["rip.ports: `ic0` is not a client [[port]] with an address"],
    );
    bad(
        "[rip]\nupdate_secs = 1\n",
        &["rip.update_secs: 1 is out of range 5..=300"],
    );
    bad(
        "[rip]\nupdate_secs = 10\njitter_secs = 5\n",
        &["rip.jitter_secs"],
    );
    bad(
        "[rip]\ntriggered_min_secs = 9\n",
        &["rip.triggered_min_secs"],
    );
    ok("[bfd]\npeers = [\"198.51.100.1\"]\n");
    bad(
        "[bfd]\npeers = [\"203.0.113.1\", \"x\"]\nmultiplier = 0\nmin_tx_ms = 5\n",
        &[
            "bfd.peers[0]: 203.0.113.1 is in no client [[port]]'s subnet",
            "bfd.peers[1]: `x` is not an IPv4 address",
            "bfd.multiplier",
            "bfd.min_tx_ms: 5 is out of range 10..=10000",
        ],
    );
    // vmac and mask on an alias.
    let v = ok("");
    assert!(v
        .cluster()
        .aliases
        .iter()
        .all(|a| !a.vmac && a.mask.is_none()));
    let text = GOLDEN.replacen(
        "name = \"spare\"\naddress = \"198.51.100.103\"",
        "name = \"spare\"\naddress = \"198.51.100.103\"\nvmac = true\nmask = \"255.255.255.0\"",
        1,
    );
    let v = Config::check(&text, "t").unwrap();
    let spare = v
        .cluster()
        .aliases
        .iter()
        .find(|a| a.name == "spare")
        .unwrap();
    assert!(spare.vmac);
    assert_eq!(spare.mask, Some("255.255.255.0".parse().unwrap()));
    let text = text.replace("mask = \"255.255.255.0\"", "mask = \"255.0.255.0\"");
    let e = Config::check(&text, "t").unwrap_err().to_string();
    assert!(
        e.contains("alias[4] \"spare\" mask: `255.0.255.0` is not a netmask"),
        "{e}"
    );
}

/// Issue 9: `[sync]`: on by default exactly when `[router]` is configured; every key
/// range-checked and named; its port distinct from the router protocol's; on without
/// `[router]` an error naming both; the flows file works alone and "" turns it off.
#[test]
fn sync_section_defaults_ranges_and_router_dependency() {
    use clua_lb::config::{SyncConfig, DEFAULT_FLOWS_FILE};
    let check = |extra: &str| Config::check(&format!("{GOLDEN}\n{extra}"), "test.toml");
    let ok = |extra: &str| -> SyncConfig {
        match check(extra) {
            Ok(v) => v.sync().clone(),
            Err(e) => panic!("refused:\n{e}\n{extra}"),
        }
    };
    let bad = |extra: &str, needles: &[&str]| {
        let e = match check(extra) {
            Ok(_) => panic!("accepted:\n{extra}"),
            Err(e) => e.to_string(),
        };
        for n in needles {
            assert!(e.contains(n), "`{n}` not in:\n{e}");
        }
    };
    let router = "[router]\nnode = \"r1\"\nkey_file = \"/k\"\n";
    // Alone: off, but the flows file is on by default.
    let s = ok("");
    assert!(!s.enabled);
    assert_eq!(s.settings(), None);
    assert_eq!(
        s.flows_file.as_deref(),
        Some(std::path::Path::new(DEFAULT_FLOWS_FILE))
    );
    // With [router]: on, with the documented defaults.
    let s = ok(router);
    assert!(s.enabled);
    let settings = s.settings().unwrap();
    assert_eq!(settings, clua_ctl::sync::SyncSettings::default());
    assert_eq!(
        (
            settings.udp_port,
            settings.refresh_ms,
            settings.max_records_per_sec
        ),
        (9473, 30_000, 1_000_000)
    );
    // Every key.
    let s = ok(&format!(
        "{router}[sync]\nport = 9999\nrefresh_secs = 5\nmax_records_per_sec = 2000\nflows_file = \"/tmp/f\"\n"
    ));
    assert_eq!(
        s,
        SyncConfig {
            enabled: true,
            udp_port: 9999,
            refresh_ms: 5_000,
            max_records_per_sec: 2000,
            flows_file: Some("/tmp/f".into()),
        }
    );
    // Off explicitly with [router]; the flows file off with "".
    let s = ok(&format!(
        "{router}[sync]\nenabled = false\nflows_file = \"\"\n"
    ));
    assert!(!s.enabled);
    assert_eq!(s.flows_file, None);
    // The flows file without [router] (one router restarting keeps its flows).
    let s = ok("[sync]\nflows_file = \"/var/tmp/x\"\n");
    assert!(!s.enabled);
    assert_eq!(
        s.flows_file.as_deref(),
        Some(std::path::Path::new("/var/tmp/x"))
    );
    bad(
        "[sync]\nenabled = true\n",
        &["sync.enabled: flow hand-off needs a [router] section"],
    );
    bad(
        &format!("{router}[sync]\nport = 0\n"),
        &["sync.port: 0 is not a UDP port"],
    );
    bad(
        &format!("{router}[sync]\nport = 9472\n"),
        &["sync.port: 9472 is router.port too"],
    );
    bad(
        &format!("{router}port = 9500\n[sync]\nport = 9500\n"),
        &["sync.port: 9500 is router.port too"],
    );
    bad(
        &format!("{router}[sync]\nport = 70000\n"),
        &["port", "70000"],
    );
    bad(
        &format!("{router}[sync]\nrefresh_secs = 0\nmax_records_per_sec = 0\n"),
        &[
            "sync.refresh_secs: 0 is out of range 1..=3600",
            "sync.max_records_per_sec: 0 is out of range 1..=100000000",
        ],
    );
    bad(
        &format!("{router}[sync]\nrefresh_secs = 3601\n"),
        &["sync.refresh_secs: 3601 is out of range 1..=3600"],
    );
    bad("[sync]\nwalk = true\n", &["unknown field `walk`"]);
    // The pipeline records hand-offs exactly when hand-off is on.
    let c = Config::parse(GOLDEN, "t").unwrap();
    assert!(!c.pipeline.handoff && !c.sync.enabled);
}

/// Issue 9 (SC2, SC3): how long a sticky client's affinity outlives its last new connection:
/// 300 s by default, range-checked; the policies themselves come from clua_services options.
#[test]
fn sticky_timeout_ms_defaults_and_is_range_checked() {
    let c = Config::parse(GOLDEN, "golden.toml").unwrap();
    assert_eq!(c.pipeline.sticky_timeout_ms, 300_000);
    let set = |v: &str| GOLDEN.replace("[tables]", &format!("[tables]\nsticky_timeout_ms = {v}"));
    let c = Config::parse(&set("60000"), "golden.toml").unwrap();
    assert_eq!(c.pipeline.sticky_timeout_ms, 60_000);
    for v in ["999", "86400001", "0"] {
        assert_rejected(&set(v), &["tables.sticky_timeout_ms", "out of range"]);
    }
    for v in ["1000", "86400000"] {
        assert!(Config::parse(&set(v), "golden.toml").is_ok(), "{v}");
    }
}

/// Issue 9: a `[[service]]` in aliasd.toml takes the policy options like clua_services, with
/// the same checks.
#[test]
fn service_policies_in_the_config() {
    let with = |opts: &str| {
        format!(
            "{GOLDEN}\n[[service]]\nname = \"ftp\"\nport = 21\nproto = \"tcp\"\noptions = [{opts}]\n"
        )
    };
    let c = Config::parse(&with("\"in_multi\", \"wildcard_sticky\""), "golden.toml").unwrap();
    let macs = [[2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2], [2, 0, 0, 0, 0, 3]];
    let snap = c.cluster.snapshot(1, &macs).unwrap();
    assert_eq!(
        snap.service(6, 21),
        (ServiceMode::InMulti, clua_pipeline::Policy::WildcardSticky)
    );
    assert!(snap.wildcard_sticky());
    assert_rejected(
        &with("\"in_single\", \"sticky\""),
        &["sticky is a policy of in_multi ports"],
    );
}

/// CA9 (docs/out_alias.md): a static member's `out_alias_ports` is its out_alias range in the
/// snapshot's table; bad ranges, overlaps, ranges holding a clua_services port and ranges on
/// agent members are rejected, each naming the member and field.
#[test]
fn out_alias_ports_of_static_members() {
    let with = |m1: &str, m2: &str| {
        GOLDEN
            .replace(
                "address = \"192.0.2.11\"\n",
                &format!("address = \"192.0.2.11\"\nout_alias_ports = \"{m1}\"\n"),
            )
            .replace(
                "address = \"192.0.2.12\"\n",
                &format!("address = \"192.0.2.12\"\nout_alias_ports = \"{m2}\"\n"),
            )
    };
    let c = Config::parse(&with("61000-61999", "62000-62999"), "test.toml").unwrap();
    let macs = [[2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2], [2, 0, 0, 0, 0, 3]];
    let s = c.cluster.snapshot(1, &macs).unwrap();
    let m1 = c.cluster.member_id("m1").unwrap();
    let m2 = c.cluster.member_id("m2").unwrap();
    assert_eq!(s.out_alias.member_for(61500), Some(m1));
    assert_eq!(s.out_alias.member_for(62999), Some(m2));
    assert_eq!(s.out_alias.member_for(63000), None);
    let cluster = s.alias_by_addr(u32::from(std::net::Ipv4Addr::new(198, 51, 100, 99)));
    assert_eq!(s.out_alias.alias(), cluster, "the default alias");
    assert_rejected(
        &with("61000-61999", "61999-62999"),
        &[
            "member \"m2\" out_alias_ports",
            "out_alias ports 61999-62999 overlap member m1's 61000-61999",
        ],
    );
    assert_rejected(
        &with("500-600", "62000-62999"),
        &[
            "member \"m1\" out_alias_ports",
            "include 513/udp (`who` in clua_services, static)",
        ],
    );
    assert_rejected(
        &with("61000-60000", "x"),
        &[
            "member[0] \"m1\" out_alias_ports: 61000-60000 ends before it starts",
            "member[1] \"m2\" out_alias_ports: `x` is not a port range",
        ],
    );
    let agent = with("61000-61999", "62000-62999").replacen(
        "encap = \"l2\"\n",
        "encap = \"l2\"\nagent = true\n",
        1,
    );
    let agent = format!("{agent}\n[adverts]\nkey_file = \"/nonexistent/key\"\n");
    assert_rejected(&agent, &["member[0] \"m1\" out_alias_ports", "advertises"]);
}

/// Issue 10 (CA7, 000 §6.6.5): the `[fragments]` section sizes the per-core fragment table:
/// defaults, ranges, and held fragments bounded by the mbuf pool they are taken from.
#[test]
fn fragments_section_defaults_ranges_and_mbuf_bound() {
    let c = Config::parse(GOLDEN, "golden.toml").unwrap();
    assert_eq!(
        c.pipeline.fragments,
        clua_pipeline::fragments::FragmentConfig::default()
    );
    assert_eq!(
        (
            c.pipeline.fragments.capacity,
            c.pipeline.fragments.timeout_ms,
            c.pipeline.fragments.max_held
        ),
        (4096, 2000, 128)
    );
    let with = |s: &str| format!("{GOLDEN}\n[fragments]\n{s}\n");
    let c = Config::parse(
        &with("capacity = 64\ntimeout_ms = 500\nmax_held = 0"),
        "golden.toml",
    )
    .unwrap();
    assert_eq!(
        (
            c.pipeline.fragments.capacity,
            c.pipeline.fragments.timeout_ms,
            c.pipeline.fragments.max_held
        ),
        (64, 500, 0)
    );
    assert_rejected(
        &with("capacity = 3"),
        &["fragments.capacity", "out of range"],
    );
    assert_rejected(
        &with("timeout_ms = 9"),
        &["fragments.timeout_ms", "out of range"],
    );
    assert_rejected(
        &with("timeout_ms = 30001"),
        &["fragments.timeout_ms", "out of range"],
    );
    assert_rejected(
        &with("max_held = 4097"),
        &["fragments.max_held", "out of range"],
    );
    assert_rejected(&with("holds = 1"), &["holds"]);
    // A quarter of the pool over the workers: 1023 mbufs and one worker allow 255.
    let small = GOLDEN.replace("[dpdk]", "[dpdk]\nmbufs = 1023");
    let small_with = |s: &str| format!("{small}\n[fragments]\n{s}\n");
    assert!(Config::parse(&small_with("max_held = 255"), "golden.toml").is_ok());
    assert_rejected(
        &small_with("max_held = 256"),
        &["fragments.max_held", "out of range"],
    );
}

/// Issue 12: `[dpdk] lcores` is EAL's --lcores map and replaces the -l list, so that two
/// workers can share a 2-CPU machine with the control thread (docs/workers.md).
#[test]
fn an_lcores_map_replaces_the_lcore_list() {
    let d = clua_lb::config::DpdkConfig {
        worker_lcores: vec![1, 2],
        ..Default::default()
    };
    let args = d.eal_args(&[]);
    assert!(
        args.windows(2).any(|w| w[0] == "-l" && w[1] == "0,1,2"),
        "{args:?}"
    );
    let d = clua_lb::config::DpdkConfig {
        lcores: Some("0@0,1@1,2@0".into()),
        ..d
    };
    let args = d.eal_args(&[]);
    assert!(
        args.windows(2)
            .any(|w| w[0] == "--lcores" && w[1] == "0@0,1@1,2@0"),
        "{args:?}"
    );
    assert!(!args.iter().any(|a| a == "-l"), "{args:?}");
    assert!(
        args.windows(2)
            .any(|w| w[0] == "--main-lcore" && w[1] == "0"),
        "{args:?}"
    );
}

/// Issue 12: `[dpdk] idle` and its keys. Old configurations keep their meaning
/// (`idle_sleep_us` alone), the default is adaptive, and every bad value names its key.
#[test]
fn dpdk_idle_modes() {
    use clua_lb::idle::{IdlePolicy, DEFAULT_MAX_SLEEP_US};
    let with = |keys: &str| GOLDEN.replace("[dpdk]", &format!("[dpdk]\n{keys}"));
    let idle = |keys: &str| {
        Config::parse(&with(keys), "golden.toml")
            .unwrap_or_else(|e| panic!("{keys}: {e}"))
            .idle
    };
    assert_eq!(
        idle(""),
        IdlePolicy::Adaptive {
            max_sleep_us: DEFAULT_MAX_SLEEP_US
        }
    );
    // The old key alone: what it always meant (the lab sets 20; benches 0).
    assert_eq!(idle("idle_sleep_us = 20"), IdlePolicy::Sleep { us: 20 });
    assert_eq!(idle("idle_sleep_us = 0"), IdlePolicy::Poll);
    assert_eq!(idle("idle = \"poll\""), IdlePolicy::Poll);
    assert_eq!(
        idle("idle = \"sleep\"\nidle_sleep_us = 50"),
        IdlePolicy::Sleep { us: 50 }
    );
    assert_eq!(
        idle("idle = \"adaptive\""),
        IdlePolicy::Adaptive {
            max_sleep_us: DEFAULT_MAX_SLEEP_US
        }
    );
    assert_eq!(
        idle("idle = \"adaptive\"\nidle_max_sleep_us = 200"),
        IdlePolicy::Adaptive { max_sleep_us: 200 }
    );
    assert_eq!(
        idle("idle_max_sleep_us = 10000"),
        IdlePolicy::Adaptive {
            max_sleep_us: 10_000
        }
    );

    assert_rejected(
        &with("idle = \"interrupt\""),
        &["dpdk.idle", "`interrupt` is not poll, sleep or adaptive"],
    );
    assert_rejected(
        &with("idle = \"sleep\""),
        &["dpdk.idle_sleep_us", "required with idle = \"sleep\""],
    );
    for bad in ["0", "10001"] {
        assert_rejected(
            &with(&format!("idle = \"sleep\"\nidle_sleep_us = {bad}")),
            &["dpdk.idle_sleep_us", "out of range 1..=10000"],
        );
        assert_rejected(
            &with(&format!("idle_max_sleep_us = {bad}")),
            &["dpdk.idle_max_sleep_us", "out of range 1..=10000"],
        );
    }
    // The old key alone is range-checked too (a 1 s sleep would stall the stop flag).
    assert_rejected(
        &with("idle_sleep_us = 1000000"),
        &["dpdk.idle_sleep_us", "out of range"],
    );
    assert_rejected(
        &with("idle = \"adaptive\"\nidle_sleep_us = 20"),
        &["dpdk.idle_sleep_us", "only valid with idle = \"sleep\""],
    );
    assert_rejected(
        &with("idle = \"poll\"\nidle_max_sleep_us = 50"),
        &[
            "dpdk.idle_max_sleep_us",
            "only valid with idle = \"adaptive\"",
        ],
    );
    assert_rejected(
        &with("idle_sleep_us = 20\nidle_max_sleep_us = 50"),
        &[
            "dpdk.idle_max_sleep_us",
            "only valid with idle = \"adaptive\"",
        ],
    );
    assert_rejected(&with("idle = 3"), &["idle"]);
}

//! DPDK integration checks, run in order in one process (EAL initialises once per process).
//!
//! Uses only virtual devices (`--no-pci`, net_null, net_ring) and EAL without huge pages or
//! shared config files, so parallel runs do not collide and no NIC is touched. Prints one line per check and
//! `N passed, M failed` as the last line; exits non-zero on any failure.

use std::panic::{catch_unwind, AssertUnwindSafe};

use clua_dpdk::{
    launch, lcore_id, probe_vdev, Burst, Eal, Error, Mbuf, Mempool, Port, PortConf, Ring,
};
use clua_packet::{PacketBuf, BURST};

/// A distinct 64-byte test frame number `i`.
fn frame(i: usize) -> Vec<u8> {
    (0..64).map(|j| (i * 7 + j) as u8).collect()
}

fn args(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

struct Checks {
    passed: usize,
    failed: usize,
}

impl Checks {
    fn run(&mut self, name: &str, f: impl FnOnce()) {
        match catch_unwind(AssertUnwindSafe(f)) {
            Ok(()) => {
                self.passed += 1;
                println!("ok   {name}");
            }
            Err(_) => {
                self.failed += 1;
                println!("FAIL {name}");
            }
        }
    }
}

fn main() {
    let mut c = Checks {
        passed: 0,
        failed: 0,
    };

    c.run("init without --no-pci or -a is refused before EAL", || {
        let e = Eal::init(&args(&[
            "--no-huge",
            "-m",
            "256",
            "--in-memory",
            "--vdev",
            "net_null9",
        ]));
        assert_eq!(e.unwrap_err(), Error::UnrestrictedDevices);
        assert!(!clua_dpdk::is_initialized());
    });

    c.run("constructors before EAL return NotInitialized", || {
        assert_eq!(
            Mempool::new("early", 63, 0, 2176, -1).unwrap_err(),
            Error::NotInitialized
        );
        assert_eq!(
            Port::by_name("net_null0").unwrap_err(),
            Error::NotInitialized
        );
        assert_eq!(launch(1, || 0).unwrap_err(), Error::NotInitialized);
        assert_eq!(Port::count(), 0);
    });

    let prefix = format!("clua-test-{}", std::process::id());
    let eal = Eal::init(&args(&[
        "--no-pci",
        "--no-huge",
        "-m",
        "256",
        // `--in-memory` is refused together with `--no-huge` by DPDK 22.11 ("--legacy-mem is
        // not compatible with --in-memory": no-huge implies legacy memory). `--no-shconf` plus
        // a per-process file prefix gives the same isolation between parallel runs.
        "--no-shconf",
        "--no-telemetry",
        "-l",
        "0,1",
        "--vdev",
        "net_null0",
        "--file-prefix",
        &prefix,
        "--log-level",
        "lib.eal:warning",
    ]))
    .expect("EAL init");
    c.run("EAL initialises with lcores 0,1", || {
        assert!(clua_dpdk::is_initialized());
        assert_eq!(eal.main_lcore(), 0);
        assert_eq!(eal.worker_lcores(), vec![1]);
        assert!(eal.tsc_hz() > 0);
        assert_eq!(lcore_id(), 0);
        let t = clua_dpdk::tsc();
        assert!(clua_dpdk::tsc() >= t);
    });

    c.run("second init is refused", || {
        assert_eq!(
            Eal::init(&args(&["--no-pci"])).unwrap_err(),
            Error::AlreadyInitialized
        );
    });

    let pool =
        Mempool::new("clua_test_pool", 2047, 32, Mempool::DEFAULT_DATA_ROOM, -1).expect("mempool");

    c.run("mempool name clash is a DPDK error naming the call", || {
        let e = Mempool::new("clua_test_pool", 63, 0, 2176, -1).unwrap_err();
        assert_eq!(e.errno(), Some(libc::EEXIST), "{e}");
        assert!(
            e.to_string().starts_with("rte_pktmbuf_pool_create failed"),
            "{e}"
        );
    });

    c.run("Mbuf::from_bytes round-trips bytes", || {
        let bytes = frame(3);
        let m = Mbuf::from_bytes(&pool, &bytes).expect("mbuf");
        assert_eq!(m.data(), &bytes[..]);
        assert_eq!(m.len(), 64);
        assert_eq!(m.headroom(), 128);
        assert_eq!(m.segments(), 1);
        assert!(pool.in_use() >= 1);
        let empty = Mbuf::alloc(&pool).expect("alloc");
        assert!(empty.is_empty());
        assert!(Mbuf::from_bytes(&pool, &vec![0u8; 4000]).is_none());
        let raw = m.into_raw();
        // SAFETY: raw came from into_raw just above and nothing else owns it.
        let m = unsafe { Mbuf::from_raw(raw) };
        assert_eq!(m.data(), &bytes[..]);
    });

    c.run(
        "prepend/adj/trim follow PacketBuf and refuse out of room",
        || {
            let mut m = Mbuf::from_bytes(&pool, &[1, 2, 3, 4]).unwrap();
            assert!(!m.prepend(129));
            assert_eq!(m.data(), &[1, 2, 3, 4]);
            assert!(m.prepend(2));
            assert_eq!(m.headroom(), 126);
            m.data_mut()[..2].copy_from_slice(&[9, 9]);
            assert_eq!(m.data(), &[9, 9, 1, 2, 3, 4]);
            assert!(m.prepend(126));
            assert!(!m.prepend(1));
            assert!(m.adj(126));
            assert!(m.adj(3));
            assert_eq!(m.data(), &[2, 3, 4]);
            assert!(!m.adj(4));
            assert!(m.trim(1));
            assert_eq!(m.data(), &[2, 3]);
            assert!(!m.trim(3));
            assert_eq!(m.data(), &[2, 3]);
            assert!(!m.prepend(1 << 20));
        },
    );

    c.run("rss hash is reported only when set", || {
        let mut m = Mbuf::from_bytes(&pool, &[0; 60]).unwrap();
        assert_eq!(m.rss_hash(), None);
        m.set_rss_hash(0xdead_beef);
        assert_eq!(m.rss_hash(), Some(0xdead_beef));
        m.prefetch();
    });

    c.run(
        "Burst push/pop/swap_remove/drain keep ownership straight",
        || {
            let before = pool.in_use();
            let mut b = Burst::new();
            for i in 0..BURST {
                b.push(Mbuf::from_bytes(&pool, &frame(i)).unwrap()).unwrap();
            }
            assert!(b.is_full());
            let extra = b.push(Mbuf::from_bytes(&pool, &frame(99)).unwrap());
            assert_eq!(extra.unwrap_err().data(), &frame(99)[..]);
            let m = b.swap_remove(0);
            assert_eq!(m.data(), &frame(0)[..]);
            assert_eq!(b.as_slice()[0].data(), &frame(BURST - 1)[..]);
            assert_eq!(b.pop().unwrap().data(), &frame(BURST - 2)[..]);
            let mut d = b.drain();
            assert_eq!(d.len(), BURST - 2);
            assert_eq!(d.next().unwrap().data(), &frame(BURST - 1)[..]);
            assert_eq!(d.next().unwrap().data(), &frame(1)[..]);
            drop(d);
            assert!(b.is_empty());
            drop(m);
            assert_eq!(pool.in_use(), before, "every mbuf went back to the pool");
        },
    );

    let rx_ring = Ring::new("clua_rx", 1024, Ring::SP_ENQ | Ring::SC_DEQ).expect("rx ring");
    let tx_ring = Ring::new("clua_tx", 1024, Ring::SP_ENQ | Ring::SC_DEQ).expect("tx ring");
    let ring_port = Port::from_rings("clua", &[&rx_ring], &[&tx_ring], -1);

    c.run("ring enqueue keeps the unsent ones at the front", || {
        let small = Ring::new("clua_small", 8, 0).unwrap();
        let mut b = Burst::new();
        for i in 0..10 {
            b.push(Mbuf::from_bytes(&pool, &frame(i)).unwrap()).unwrap();
        }
        assert_eq!(small.enqueue_burst(&mut b), 7);
        assert_eq!(small.count(), 7);
        assert_eq!(b.len(), 3);
        for (k, m) in b.as_slice().iter().enumerate() {
            assert_eq!(m.data(), &frame(7 + k)[..]);
        }
        let mut out = Burst::new();
        assert_eq!(small.dequeue_burst(&mut out), 7);
        assert_eq!(out.as_slice()[6].data(), &frame(6)[..]);
        assert_eq!(small.enqueue_burst(&mut b), 3);
        // `small` is dropped with 3 mbufs in it: they must go back to the pool.
    });

    c.run("from_rings port configures and starts", || {
        let port = ring_port.as_ref().expect("from_rings");
        assert_eq!(Port::by_name("net_ring_clua").unwrap().id(), port.id());
        let conf = PortConf {
            rx_desc: 128,
            tx_desc: 128,
            ..PortConf::default()
        };
        port.configure(&conf, &pool).expect("configure");
        port.start().expect("start");
        assert_eq!(port.driver_name(), "net_ring");
        assert!(port.link_up());
    });

    c.run(
        "rx_burst returns 32 then 8 identical packets in order",
        || {
            let port = ring_port.as_ref().expect("from_rings");
            let mut b = Burst::new();
            for i in 0..40 {
                if b.is_full() {
                    assert_eq!(rx_ring.enqueue_burst(&mut b), BURST);
                }
                b.push(Mbuf::from_bytes(&pool, &frame(i)).unwrap()).unwrap();
            }
            assert_eq!(rx_ring.enqueue_burst(&mut b), 8);
            assert_eq!(rx_ring.count(), 40);

            let mut first = Burst::new();
            assert_eq!(port.rx_burst(0, &mut first), 32);
            assert_eq!(
                port.rx_burst(0, &mut first),
                0,
                "a full burst takes nothing"
            );
            let mut second = Burst::new();
            assert_eq!(port.rx_burst(0, &mut second), 8);
            assert_eq!(port.rx_burst(0, &mut second), 0);
            for (i, m) in first.as_slice().iter().chain(second.as_slice()).enumerate() {
                assert_eq!(m.data(), &frame(i)[..], "packet {i}");
            }

            assert_eq!(port.tx_burst(0, &mut first), 32);
            assert!(first.is_empty());
            assert_eq!(port.tx_burst(0, &mut second), 8);
            assert_eq!(tx_ring.count(), 40);
            let mut out = Burst::new();
            let mut i = 0;
            while tx_ring.dequeue_burst(&mut out) > 0 {
                for m in out.drain() {
                    assert_eq!(m.data(), &frame(i)[..], "sent packet {i}");
                    i += 1;
                }
            }
            assert_eq!(i, 40);
            let s = port.stats();
            assert_eq!((s.ipackets, s.opackets), (40, 40));
            // The extended statistics (issue 11): net_ring has only ethdev's generic ones,
            // which agree with the basic counters.
            let xs = port.xstats().expect("xstats");
            let get = |n: &str| xs.iter().find(|(k, _)| k == n).map(|(_, v)| *v);
            assert_eq!(get("rx_good_packets"), Some(40), "{xs:?}");
            assert_eq!(get("tx_good_packets"), Some(40), "{xs:?}");
            assert_eq!(get("rx_missed_errors"), Some(0), "{xs:?}");
        },
    );

    c.run(
        "a two-queue net_ring port keeps its queues apart and has no RSS (issue 12)",
        || {
            // Worker i of aliasd owns RX/TX queue i of every port: queue 1's frames must come
            // out of queue 1 only, and what queue 1 sends must reach ring 1 only.
            let rings: Vec<Ring> = (0..4)
                .map(|i| Ring::new(&format!("clua_q{i}"), 64, Ring::SP_ENQ | Ring::SC_DEQ))
                .collect::<Result<_, _>>()
                .expect("rings");
            let port = Port::from_rings(
                "clua_2q",
                &[&rings[0], &rings[1]],
                &[&rings[2], &rings[3]],
                -1,
            )
            .expect("from_rings");
            assert_eq!(port.rss_hash_types(), Ok(0), "net_ring has no RSS");
            let conf = PortConf {
                rx_queues: 2,
                tx_queues: 2,
                rx_desc: 64,
                tx_desc: 64,
                rss: true,
                mtu: None,
            };
            port.configure(&conf, &pool)
                .expect("RSS asked for but absent is no error");
            port.start().expect("start");
            let mut b = Burst::new();
            for i in 0..3 {
                b.push(Mbuf::from_bytes(&pool, &frame(100 + i)).unwrap())
                    .unwrap();
            }
            assert_eq!(rings[1].enqueue_burst(&mut b), 3);
            let mut got = Burst::new();
            assert_eq!(port.rx_burst(0, &mut got), 0, "queue 0 has nothing");
            assert_eq!(port.rx_burst(1, &mut got), 3);
            assert_eq!(got.as_slice()[2].data(), &frame(102)[..]);
            assert_eq!(port.tx_burst(1, &mut got), 3);
            assert_eq!((rings[2].count(), rings[3].count()), (0, 3));
            let mut out = Burst::new();
            while rings[3].dequeue_burst(&mut out) > 0 {
                out.clear();
            }
            port.stop().expect("stop");
            port.close().expect("close");
        },
    );

    c.run(
        "launched closure runs on lcore 1 and returns its value",
        || {
            let l = launch(1, || if lcore_id() == 1 { 42 } else { -7 }).expect("launch");
            assert_eq!(l.lcore(), 1);
            assert_eq!(l.wait(), 42);
            let busy = launch(1, || {
                std::thread::sleep(std::time::Duration::from_millis(50));
                5
            })
            .expect("launch");
            assert_eq!(
                launch(1, || 0).unwrap_err().errno(),
                Some(libc::EBUSY),
                "lcore 1 is busy"
            );
            assert_eq!(busy.wait(), 5);
            assert!(matches!(
                launch(0, || 0).unwrap_err(),
                Error::InvalidArgument { .. }
            ));
        },
    );

    c.run("a panicking closure reports -1", || {
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let r = launch(1, || panic!("boom")).expect("launch").wait();
        std::panic::set_hook(hook);
        assert_eq!(r, -1);
    });

    c.run(
        "net_null0 configures, starts, has a MAC, receives and sends",
        || {
            let port = Port::by_name("net_null0").expect("net_null0");
            assert!(Port::count() >= 2);
            assert_eq!(port.driver_name(), "net_null");
            let conf = PortConf {
                rx_queues: 2,
                tx_queues: 2,
                rx_desc: 256,
                tx_desc: 256,
                rss: true,
                mtu: None,
            };
            port.configure(&conf, &pool).expect("configure");
            port.start().expect("start");
            let mac = port.mac();
            assert_eq!(mac.len(), 6);
            port.set_promiscuous(true).expect("promiscuous");
            let mut b = Burst::new();
            assert_eq!(port.rx_burst(1, &mut b), BURST, "net_null makes packets");
            assert_eq!(port.tx_burst(1, &mut b), BURST, "net_null swallows packets");
            assert!(b.is_empty());
            port.stop().expect("stop");
            port.close().expect("close");
        },
    );

    c.run("probe_vdev adds a port after init", || {
        probe_vdev("net_null1").expect("probe");
        let p = Port::by_name("net_null1").expect("by_name");
        assert!(p.mac().len() == 6);
        p.close().expect("close");
        let e = Port::by_name("no_such_port").unwrap_err();
        assert!(
            e.to_string().contains("rte_eth_dev_get_port_by_name"),
            "{e}"
        );
    });

    c.run("teardown returns every mbuf to the pool", || {
        if let Ok(port) = ring_port {
            port.stop().expect("stop");
            port.close().expect("close");
        }
        drop(rx_ring);
        drop(tx_ring);
        assert_eq!(pool.in_use(), 0);
    });
    drop(pool);
    drop(eal);
    // rte_eal_cleanup leaves the runtime directory behind (empty with --no-shconf and
    // --no-telemetry, which would otherwise keep its socket there until exit).
    let runtime = std::env::var("XDG_RUNTIME_DIR")
        .ok()
        .filter(|_| not_root())
        .unwrap_or_else(|| "/var/run".to_string());
    if let Err(e) = std::fs::remove_dir(format!("{runtime}/dpdk/{prefix}")) {
        eprintln!("note: could not remove the EAL runtime dir: {e}");
    }

    println!("{} passed, {} failed", c.passed, c.failed);
    if c.failed > 0 {
        std::process::exit(1);
    }
}

/// Whether this process runs as a non-root user (EAL then puts its runtime dir under
/// `$XDG_RUNTIME_DIR`).
fn not_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() != 0 }
}

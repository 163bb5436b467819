//! Ethernet ports (ethdev): configuration, start/stop, statistics and the burst calls.

use std::ffi::{CStr, CString};
use std::mem::MaybeUninit;

use clua_dpdk_sys as sys;

use clua_packet::PacketPort;

use crate::eal::ensure_running;
use crate::mbuf::SharedMbuf;
use crate::mbuf::{fill_burst, send_burst};
use crate::{Burst, Error, Mbuf, Mempool, Ring};

/// How to set up a port's queues. See [`Port::configure`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortConf {
    /// Number of RX queues (one per worker lcore reading the port).
    pub rx_queues: u16,
    /// Number of TX queues (one per worker lcore writing the port).
    pub tx_queues: u16,
    /// RX descriptors per queue; clamped to what the device accepts.
    pub rx_desc: u16,
    /// TX descriptors per queue; clamped to what the device accepts.
    pub tx_desc: u16,
    /// Spread flows over the RX queues by an RSS hash of IP addresses and TCP/UDP ports, when
    /// the device supports it and there is more than one RX queue.
    pub rss: bool,
    /// MTU to set, or `None` for the device default.
    pub mtu: Option<u16>,
}

impl Default for PortConf {
    fn default() -> Self {
        PortConf {
            rx_queues: 1,
            tx_queues: 1,
            rx_desc: 1024,
            tx_desc: 1024,
            rss: false,
            mtu: None,
        }
    }
}

/// A port's basic counters (`rte_eth_stats`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortStats {
    /// Packets received.
    pub ipackets: u64,
    /// Packets sent.
    pub opackets: u64,
    /// Bytes received.
    pub ibytes: u64,
    /// Bytes sent.
    pub obytes: u64,
    /// Packets the NIC dropped because the RX queues were full.
    pub imissed: u64,
    /// Erroneous received packets.
    pub ierrors: u64,
    /// Failed transmissions.
    pub oerrors: u64,
    /// RX mbuf allocation failures.
    pub rx_nombuf: u64,
}

/// An ethdev port, by id. A small `Copy`-free handle: control calls (configure, start, stop,
/// close) belong to the control thread; the burst calls to the workers.
///
/// **Queue ownership**: [`Port::rx_burst`] and [`Port::tx_burst`] take `&self` so several worker
/// lcores can share one `Port`, but DPDK queues are not thread-safe: the caller guarantees that
/// each (port, queue) pair is used by one thread at a time (aliasd gives every worker its own
/// queue index), and that no burst call runs concurrently with configure/stop/close.
#[derive(Debug, PartialEq, Eq)]
pub struct Port {
    id: u16,
}

fn cstring(call: &'static str, s: &str) -> Result<CString, Error> {
    CString::new(s).map_err(|_| Error::InvalidArgument {
        call,
        what: "the name contains a NUL byte",
    })
}

impl Port {
    /// The port with ethdev name `name` (e.g. `net_null0`, or a PCI address with `-a`).
    ///
    /// # Errors
    /// [`Error::NotInitialized`]; [`Error::Dpdk`] (`ENODEV`) when no port has that name.
    pub fn by_name(name: &str) -> Result<Port, Error> {
        ensure_running()?;
        let cname = cstring("rte_eth_dev_get_port_by_name", name)?;
        let mut id = 0u16;
        // SAFETY: EAL is running; cname is a valid C string and id a valid out-pointer.
        let ret = unsafe { sys::rte_eth_dev_get_port_by_name(cname.as_ptr(), &mut id) };
        Error::check("rte_eth_dev_get_port_by_name", ret)?;
        Ok(Port { id })
    }

    /// The port with id `id`, if it exists.
    ///
    /// # Errors
    /// [`Error::NotInitialized`]; [`Error::Dpdk`] (`ENODEV`) for an unknown id.
    pub fn from_id(id: u16) -> Result<Port, Error> {
        ensure_running()?;
        // SAFETY: EAL is running; any id may be checked.
        if unsafe { sys::rte_eth_dev_is_valid_port(id) } == 1 {
            Ok(Port { id })
        } else {
            Err(Error::dpdk("rte_eth_dev_is_valid_port", libc::ENODEV))
        }
    }

    /// Number of usable ports (`rte_eth_dev_count_avail`); 0 before EAL.
    pub fn count() -> u16 {
        if ensure_running().is_err() {
            return 0;
        }
        // SAFETY: EAL is running; this reads the device table.
        unsafe { sys::rte_eth_dev_count_avail() }
    }

    /// A net_ring port whose ethdev name is `net_ring_<name>` (the PMD adds the prefix), whose RX queue `i` dequeues from `rx[i]` and TX queue `i`
    /// enqueues into `tx[i]` (`rte_eth_from_rings`), on NUMA `socket` (`-1`: any).
    ///
    /// The rings must outlive the port: close the port before dropping them. The ring PMD
    /// treats the rings as holding mbufs.
    ///
    /// # Errors
    /// [`Error::NotInitialized`]; [`Error::Dpdk`] with `rte_errno` when the PMD refuses
    /// (e.g. `EEXIST` for a taken name).
    pub fn from_rings(name: &str, rx: &[&Ring], tx: &[&Ring], socket: i32) -> Result<Port, Error> {
        ensure_running()?;
        let cname = cstring("rte_eth_from_rings", name)?;
        const MAX: usize = sys::RTE_MAX_QUEUES_PER_PORT as usize;
        if rx.is_empty() || tx.is_empty() || rx.len() > MAX || tx.len() > MAX {
            return Err(Error::InvalidArgument {
                call: "rte_eth_from_rings",
                what: "need 1 to RTE_MAX_QUEUES_PER_PORT rx and tx rings",
            });
        }
        let rxp: Vec<*mut sys::rte_ring> = rx.iter().map(|r| r.as_ptr()).collect();
        let txp: Vec<*mut sys::rte_ring> = tx.iter().map(|r| r.as_ptr()).collect();
        // SAFETY: EAL is running; the arrays hold rx.len()/tx.len() live ring pointers and
        // outlive the call (the PMD copies the pointers); cname is a valid C string.
        let ret = unsafe {
            sys::rte_eth_from_rings(
                cname.as_ptr(),
                rxp.as_ptr(),
                rxp.len() as u32,
                txp.as_ptr(),
                txp.len() as u32,
                socket as u32,
            )
        };
        if ret < 0 {
            return Err(Error::from_rte_errno("rte_eth_from_rings"));
        }
        Ok(Port { id: ret as u16 })
    }

    /// The ethdev port id.
    pub fn id(&self) -> u16 {
        self.id
    }

    fn dev_info(&self) -> Result<sys::rte_eth_dev_info, Error> {
        let mut info = MaybeUninit::<sys::rte_eth_dev_info>::zeroed();
        // SAFETY: the port id is valid; info is a writable rte_eth_dev_info (all-zero is a
        // valid value of it: integers and null pointers).
        let ret = unsafe { sys::rte_eth_dev_info_get(self.id, info.as_mut_ptr()) };
        Error::check("rte_eth_dev_info_get", ret)?;
        // SAFETY: zero-initialised, then filled by DPDK.
        Ok(unsafe { info.assume_init() })
    }

    /// The RSS hash types [`Port::configure`] asks for on this device when `rss` is on: the IP,
    /// TCP and UDP ones it supports. 0: the device has no RSS over them (net_ring,
    /// net_af_packet, net_af_xdp, ...), so its driver alone decides which RX queue a frame
    /// takes (one queue for a NIC: one worker does the work; docs/workers.md).
    ///
    /// # Errors
    /// [`Error::Dpdk`] when the device's information cannot be read.
    pub fn rss_hash_types(&self) -> Result<u64, Error> {
        let info = self.dev_info()?;
        // SAFETY: returns a constant.
        let want = unsafe { sys::clua_eth_rss_ip_tcp_udp() };
        Ok(want & info.flow_type_rss_offloads)
    }

    /// Configures the port (which must be stopped) and sets up every RX queue, taking mbufs
    /// from `pool`, and every TX queue, with the driver's default queue settings.
    ///
    /// RSS over IP addresses and TCP/UDP ports is enabled when `conf.rss`, `rx_queues > 1`,
    /// and the device supports some of those hash types (only the supported ones are asked
    /// for). Descriptor counts are clamped by `rte_eth_dev_adjust_nb_rx_tx_desc`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for zero queues or more than the device has; [`Error::Dpdk`]
    /// naming whichever ethdev call failed.
    pub fn configure(&self, conf: &PortConf, pool: &Mempool) -> Result<(), Error> {
        let info = self.dev_info()?;
        if conf.rx_queues == 0
            || conf.tx_queues == 0
            || conf.rx_queues > info.max_rx_queues
            || conf.tx_queues > info.max_tx_queues
        {
            return Err(Error::InvalidArgument {
                call: "rte_eth_dev_configure",
                what: "queue count is zero or above the device maximum",
            });
        }
        // SAFETY: rte_eth_conf is plain data (integers, unions of integers, null pointers);
        // all-zero is DPDK's documented "defaults" value.
        let mut eth_conf: sys::rte_eth_conf = unsafe { std::mem::zeroed() };
        if conf.rss && conf.rx_queues > 1 {
            // SAFETY: returns a constant.
            let want = unsafe { sys::clua_eth_rss_ip_tcp_udp() };
            let hf = want & info.flow_type_rss_offloads;
            if hf != 0 {
                eth_conf.rxmode.mq_mode = sys::RTE_ETH_MQ_RX_RSS;
                eth_conf.rx_adv_conf.rss_conf.rss_hf = hf;
                // SAFETY: returns a constant.
                let rss_hash = unsafe { sys::clua_eth_rx_offload_rss_hash() };
                if info.rx_offload_capa & rss_hash != 0 {
                    eth_conf.rxmode.offloads |= rss_hash;
                }
            }
        }
        if let Some(mtu) = conf.mtu {
            eth_conf.rxmode.mtu = u32::from(mtu);
        }
        // SAFETY: the port id is valid and eth_conf a valid configuration that DPDK copies.
        let ret = unsafe {
            sys::rte_eth_dev_configure(self.id, conf.rx_queues, conf.tx_queues, &eth_conf)
        };
        Error::check("rte_eth_dev_configure", ret)?;

        let (mut rx_desc, mut tx_desc) = (conf.rx_desc, conf.tx_desc);
        // SAFETY: valid port id and out-pointers to locals.
        let ret =
            unsafe { sys::rte_eth_dev_adjust_nb_rx_tx_desc(self.id, &mut rx_desc, &mut tx_desc) };
        Error::check("rte_eth_dev_adjust_nb_rx_tx_desc", ret)?;

        // SAFETY: valid port id; returns the socket or SOCKET_ID_ANY (-1).
        let socket = unsafe { sys::rte_eth_dev_socket_id(self.id) };
        for q in 0..conf.rx_queues {
            // SAFETY: valid port id, q < configured rx queues, NULL rxconf means the driver
            // default, and pool is a live pktmbuf pool (which must outlive the port: documented
            // on Mempool).
            let ret = unsafe {
                sys::rte_eth_rx_queue_setup(
                    self.id,
                    q,
                    rx_desc,
                    socket as u32,
                    std::ptr::null(),
                    pool.as_ptr(),
                )
            };
            Error::check("rte_eth_rx_queue_setup", ret)?;
        }
        for q in 0..conf.tx_queues {
            // SAFETY: valid port id, q < configured tx queues, NULL txconf means the default.
            let ret = unsafe {
                sys::rte_eth_tx_queue_setup(self.id, q, tx_desc, socket as u32, std::ptr::null())
            };
            Error::check("rte_eth_tx_queue_setup", ret)?;
        }
        Ok(())
    }

    /// Starts the port (`rte_eth_dev_start`).
    pub fn start(&self) -> Result<(), Error> {
        // SAFETY: valid port id.
        Error::check("rte_eth_dev_start", unsafe {
            sys::rte_eth_dev_start(self.id)
        })
        .map(drop)
    }

    /// Stops the port (`rte_eth_dev_stop`). No burst call may run concurrently.
    pub fn stop(&self) -> Result<(), Error> {
        // SAFETY: valid port id.
        Error::check("rte_eth_dev_stop", unsafe {
            sys::rte_eth_dev_stop(self.id)
        })
        .map(drop)
    }

    /// Closes the port (`rte_eth_dev_close`), releasing its queues and the mbufs they hold.
    /// Stop it first.
    pub fn close(self) -> Result<(), Error> {
        // SAFETY: valid port id, consumed so no further call can use it.
        Error::check("rte_eth_dev_close", unsafe {
            sys::rte_eth_dev_close(self.id)
        })
        .map(drop)
    }

    /// Enables or disables promiscuous mode.
    pub fn set_promiscuous(&self, on: bool) -> Result<(), Error> {
        // SAFETY: valid port id.
        let ret = unsafe {
            if on {
                sys::rte_eth_promiscuous_enable(self.id)
            } else {
                sys::rte_eth_promiscuous_disable(self.id)
            }
        };
        let call = if on {
            "rte_eth_promiscuous_enable"
        } else {
            "rte_eth_promiscuous_disable"
        };
        Error::check(call, ret).map(drop)
    }

    /// The port's MAC address (all zero if the driver cannot tell).
    pub fn mac(&self) -> [u8; 6] {
        let mut addr = sys::rte_ether_addr::default();
        // SAFETY: valid port id and a writable rte_ether_addr.
        let ret = unsafe { sys::rte_eth_macaddr_get(self.id, &mut addr) };
        if ret < 0 {
            return [0; 6];
        }
        addr.addr_bytes
    }

    /// Sets the port's MAC address (`rte_eth_dev_default_mac_addr_set`). Not every PMD can.
    ///
    /// # Errors
    /// [`Error::Dpdk`] when the driver refuses (e.g. `ENOTSUP`).
    pub fn set_mac(&self, mac: [u8; 6]) -> Result<(), Error> {
        let mut addr = sys::rte_ether_addr { addr_bytes: mac };
        // SAFETY: valid port id and a valid rte_ether_addr that outlives the call.
        let ret = unsafe { sys::rte_eth_dev_default_mac_addr_set(self.id, &mut addr) };
        Error::check("rte_eth_dev_default_mac_addr_set", ret).map(drop)
    }

    /// The name of the port's driver, e.g. `net_null`.
    pub fn driver_name(&self) -> String {
        match self.dev_info() {
            Ok(info) if !info.driver_name.is_null() => {
                // SAFETY: DPDK sets driver_name to the driver's static NUL-terminated name.
                unsafe { CStr::from_ptr(info.driver_name) }
                    .to_string_lossy()
                    .into_owned()
            }
            _ => String::new(),
        }
    }

    /// Whether the link is up, without waiting.
    pub fn link_up(&self) -> bool {
        let mut link = sys::rte_eth_link::default();
        // SAFETY: valid port id and a writable rte_eth_link.
        let ret = unsafe { sys::rte_eth_link_get_nowait(self.id, &mut link) };
        ret == 0 && link.link_status() == sys::RTE_ETH_LINK_UP as u16
    }

    /// The port's counters (all zero if the driver cannot tell).
    pub fn stats(&self) -> PortStats {
        // SAFETY: rte_eth_stats is plain integers; zero is valid.
        let mut s: sys::rte_eth_stats = unsafe { std::mem::zeroed() };
        // SAFETY: valid port id and a writable rte_eth_stats.
        if unsafe { sys::rte_eth_stats_get(self.id, &mut s) } != 0 {
            return PortStats::default();
        }
        PortStats {
            ipackets: s.ipackets,
            opackets: s.opackets,
            ibytes: s.ibytes,
            obytes: s.obytes,
            imissed: s.imissed,
            ierrors: s.ierrors,
            oerrors: s.oerrors,
            rx_nombuf: s.rx_nombuf,
        }
    }

    /// The PMD's extended statistics (`rte_eth_xstats_get_names` / `rte_eth_xstats_get`): every
    /// counter the driver exposes, by name, in the driver's order. Drivers without xstats of
    /// their own (net_af_xdp in DPDK 22.11) still get ethdev's generic ones (`rx_good_packets`,
    /// `rx_missed_errors`, `rx_q0_packets`, ...). Allocates: for the control and metrics
    /// threads, not the packet path.
    ///
    /// # Errors
    /// [`Error::Dpdk`] naming the call that failed (e.g. the port was closed).
    pub fn xstats(&self) -> Result<Vec<(String, u64)>, Error> {
        // The count can grow between the calls (a queue set up meanwhile): retried a few times.
        for _ in 0..4 {
            // SAFETY: valid port id; a NULL array with size 0 asks for the count only.
            let n = unsafe { sys::rte_eth_xstats_get_names(self.id, std::ptr::null_mut(), 0) };
            let n = usize::try_from(Error::check("rte_eth_xstats_get_names", n)?).unwrap_or(0);
            if n == 0 {
                return Ok(Vec::new());
            }
            let mut names = vec![sys::rte_eth_xstat_name { name: [0; 64] }; n];
            // SAFETY: names has room for n entries, and n is passed as the size.
            let got =
                unsafe { sys::rte_eth_xstats_get_names(self.id, names.as_mut_ptr(), n as u32) };
            let got = Error::check("rte_eth_xstats_get_names", got)?;
            if got as usize > n {
                continue;
            }
            let mut values = vec![sys::rte_eth_xstat { id: 0, value: 0 }; n];
            // SAFETY: values has room for n entries, and n is passed as the size.
            let vals = unsafe { sys::rte_eth_xstats_get(self.id, values.as_mut_ptr(), n as u32) };
            let vals = Error::check("rte_eth_xstats_get", vals)?;
            if vals as usize > n {
                continue;
            }
            let names = &names[..got as usize];
            let out = values[..vals as usize]
                .iter()
                .filter_map(|v| {
                    let name = names.get(usize::try_from(v.id).ok()?)?;
                    // The name is a NUL-terminated C string inside a fixed array.
                    let bytes: Vec<u8> = name
                        .name
                        .iter()
                        .take_while(|c| **c != 0)
                        .map(|c| *c as u8)
                        .collect();
                    Some((String::from_utf8_lossy(&bytes).into_owned(), v.value))
                })
                .collect();
            return Ok(out);
        }
        Err(Error::dpdk("rte_eth_xstats_get", libc::EAGAIN))
    }

    /// Receives up to `out.free_space()` packets from RX queue `queue`, appending them to `out`.
    /// Returns how many arrived.
    ///
    /// The caller guarantees that no other thread uses this RX queue meanwhile (see [`Port`]),
    /// and that `queue` was set up by [`Port::configure`] and the port started.
    #[inline]
    pub fn rx_burst(&self, queue: u16, out: &mut Burst) -> usize {
        // SAFETY: fill_burst hands over at most `room` free slots laid out as
        // `struct rte_mbuf *`; the driver writes at most `room` (<= BURST, so it fits a u16)
        // owned mbuf pointers there and returns how many. One thread per queue is the caller's
        // contract.
        unsafe {
            fill_burst(out, |slots, room| {
                usize::from(sys::clua_eth_rx_burst(self.id, queue, slots, room as u16))
            })
        }
    }

    /// Sends packets from the front of `b` on TX queue `queue`. Returns how many the driver
    /// took; those leave `b`, and the unsent ones stay in `b`, moved to the front.
    ///
    /// The caller guarantees that no other thread uses this TX queue meanwhile (see [`Port`]).
    #[inline]
    pub fn tx_burst(&self, queue: u16, b: &mut Burst) -> usize {
        // SAFETY: send_burst hands over the burst's `len` (<= BURST) owned mbufs laid out as
        // `struct rte_mbuf *`; the driver takes ownership of the first n it returns and leaves
        // the rest untouched. One thread per queue is the caller's contract.
        unsafe {
            send_burst(b, |slots, len| {
                usize::from(sys::clua_eth_tx_burst(self.id, queue, slots, len as u16))
            })
        }
    }
}

impl Port {
    /// Sends up to [`BURST`](clua_packet::BURST) frames from the front of `frames` on TX queue
    /// `queue` without giving them up: each frame the driver takes costs one reference
    /// ([`SharedMbuf`]), which the driver drops after sending. Returns how many it took (a
    /// prefix of `frames`). For generators; the queue contract of [`Port::tx_burst`] applies.
    pub fn tx_burst_shared(&self, queue: u16, frames: &[SharedMbuf]) -> usize {
        let n = frames.len().min(clua_packet::BURST);
        let mut ptrs = [std::ptr::null_mut::<sys::rte_mbuf>(); clua_packet::BURST];
        for (p, f) in ptrs.iter_mut().zip(&frames[..n]) {
            *p = f.lend();
        }
        // SAFETY: ptrs[..n] are live mbufs, each carrying one reference of ours that the
        // driver takes over for the packets it accepts (n <= BURST fits a u16). One thread
        // per queue is the caller's contract.
        let sent = usize::from(unsafe {
            sys::clua_eth_tx_burst(self.id, queue, ptrs.as_mut_ptr(), n as u16)
        })
        .min(n);
        for &p in &ptrs[sent..n] {
            // SAFETY: lent above and not taken by the driver.
            unsafe { SharedMbuf::put_back(p) };
        }
        sent
    }
}

/// The port trait of the data plane (see [`clua_packet::PacketPort`]), with the queue-ownership
/// contract of [`Port`].
impl PacketPort for Port {
    type Buf = Mbuf;

    #[inline]
    fn rx_burst(&self, queue: u16, out: &mut Burst) -> usize {
        Port::rx_burst(self, queue, out)
    }

    #[inline]
    fn tx_burst(&self, queue: u16, b: &mut Burst) -> usize {
        Port::tx_burst(self, queue, b)
    }
}

/// Probes a virtual device after EAL init (`rte_dev_probe`), e.g.
/// `"net_ring0"` or `"net_pcap0,rx_pcap=in.pcap,tx_pcap=out.pcap"`.
///
/// # Errors
/// [`Error::NotInitialized`]; [`Error::Dpdk`] naming `rte_dev_probe` when probing fails.
pub fn probe_vdev(devargs: &str) -> Result<(), Error> {
    ensure_running()?;
    let c = cstring("rte_dev_probe", devargs)?;
    // SAFETY: EAL is running and c is a valid C string (copied by DPDK).
    let ret = unsafe { sys::rte_dev_probe(c.as_ptr()) };
    Error::check("rte_dev_probe", ret).map(drop)
}

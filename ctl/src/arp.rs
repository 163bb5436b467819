//! ARP in alias context: the proxy-ARP master answers requests for its aliases (CA4) and
//! announces them with gratuitous ARP (RFC 5227 §2.3 announcements) when it takes them over.
//!
//! Only aliases in the port's own subnet are answered on a client port: an alias on a virtual
//! subnet is reached through a route, not proxy ARP (seed 000 Table 6-1). The router also
//! answers for its own port address, on any port.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use clua_pipeline::snapshot::{PortId, PortRole, Snapshot};
use clua_pipeline::wire::arp::{ArpOperation, ArpPacket, ArpRepr};
use clua_pipeline::wire::ethernet::{parse_l2, EtherType, EthernetFrame, BROADCAST};

/// What the responder did with an ARP packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArpOutcome {
    /// The frame was rewritten in place into a reply; transmit it on the same port.
    Reply,
    /// A valid ARP packet not for us (another host's address, a reply, a virtual-subnet alias).
    Ignored,
    /// Not a well-formed Ethernet/IPv4 ARP packet.
    Malformed,
}

/// Which aliases this router answers ARP for, and with which MAC (issue 8; CA4, CA5).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ArpView {
    /// `None`: the router is alone and answers for every alias (in a client port's subnet);
    /// `Some`: only for these, the aliases it is the elected proxy-ARP master of.
    pub masters: Option<BTreeSet<Ipv4Addr>>,
    /// The vMAC of every alias that has one (CA5): its ARP replies and announcements carry it.
    pub vmacs: BTreeMap<Ipv4Addr, [u8; 6]>,
}

impl ArpView {
    /// Whether this router answers for alias `addr` (subnet rules aside).
    pub fn is_master(&self, addr: Ipv4Addr) -> bool {
        self.masters.as_ref().is_none_or(|m| m.contains(&addr))
    }
}

/// The MAC the router answers ARP for `target` on `port` with (the port's, or the alias's
/// vMAC), or `None` if it does not answer: its own port address always; an alias only on a
/// client port whose subnet holds it (or that has no address), and only if `view` says it is
/// the alias's master.
pub fn answers_for(
    snapshot: &Snapshot,
    view: &ArpView,
    port: PortId,
    target: Ipv4Addr,
) -> Option<[u8; 6]> {
    let p = snapshot.ports.get(port as usize)?;
    if p.ipv4 == Some(target) {
        return Some(p.mac);
    }
    if p.role != PortRole::Client
        || snapshot.alias_by_addr(u32::from(target)).is_none()
        || !view.is_master(target)
    {
        return None;
    }
    let in_subnet = match p.ipv4 {
        None => true,
        Some(own) => {
            let mask = if p.prefix_len == 0 {
                0
            } else {
                u32::MAX << (32 - p.prefix_len as u32)
            };
            u32::from(own) & mask == u32::from(target) & mask
        }
    };
    in_subnet.then(|| view.vmacs.get(&target).copied().unwrap_or(p.mac))
}

/// Turns an ARP request for an address we answer for ([`answers_for`]) into the reply, in
/// place, from the MAC it gives. A VLAN tag, if present, is kept so the reply goes back on the
/// same VLAN.
pub fn respond(frame: &mut [u8], snapshot: &Snapshot, view: &ArpView, port: PortId) -> ArpOutcome {
    let Ok(l2) = parse_l2(frame) else {
        return ArpOutcome::Malformed;
    };
    if l2.ethertype != EtherType::ARP {
        return ArpOutcome::Malformed;
    }
    let request = {
        let Ok(pkt) = ArpPacket::new_checked(&frame[l2.l3_offset..]) else {
            return ArpOutcome::Malformed;
        };
        match ArpRepr::parse(&pkt) {
            Ok(r) => r,
            Err(_) => return ArpOutcome::Malformed,
        }
    };
    if request.operation != ArpOperation::Request {
        return ArpOutcome::Ignored;
    }
    let Some(our_mac) = answers_for(snapshot, view, port, request.target_protocol_addr) else {
        return ArpOutcome::Ignored;
    };
    // Never answer a probe's zero sender address with a unicast to nobody: RFC 5227 probes use
    // sender 0.0.0.0 and still deserve a reply (conflict detection), sent to the sender MAC.
    let reply = ArpRepr {
        operation: ArpOperation::Reply,
        source_hardware_addr: our_mac,
        source_protocol_addr: request.target_protocol_addr,
        target_hardware_addr: request.source_hardware_addr,
        target_protocol_addr: request.source_protocol_addr,
    };
    {
        let mut eth = EthernetFrame::new_unchecked(&mut *frame);
        eth.set_dst_addr(request.source_hardware_addr);
        eth.set_src_addr(our_mac);
    }
    let mut pkt = ArpPacket::new_unchecked(&mut frame[l2.l3_offset..]);
    reply.emit(&mut pkt);
    ArpOutcome::Reply
}

/// Length of an untagged ARP frame (without padding).
pub const ARP_FRAME_LEN: usize = 14 + 28;

/// Writes a gratuitous ARP announcement for `addr` at `mac` (RFC 5227 §2.3: an ARP request with
/// sender and target protocol address both `addr`, broadcast).
pub fn gratuitous(buf: &mut [u8; ARP_FRAME_LEN], mac: [u8; 6], addr: Ipv4Addr) {
    request(buf, BROADCAST, mac, addr, addr);
}

/// Writes an ARP request for `target` from `mac` / `addr`, sent to `to` (broadcast, or a known
/// MAC for a unicast refresh). The target hardware address is zero, as in any request. `addr`
/// is 0.0.0.0 on a port without an address (an RFC 5227 probe, which hosts answer too).
pub fn request(
    buf: &mut [u8; ARP_FRAME_LEN],
    to: [u8; 6],
    mac: [u8; 6],
    addr: Ipv4Addr,
    target: Ipv4Addr,
) {
    {
        let mut eth = EthernetFrame::new_unchecked(&mut buf[..]);
        eth.set_dst_addr(to);
        eth.set_src_addr(mac);
        eth.set_ethertype(EtherType::ARP);
    }
    let repr = ArpRepr {
        operation: ArpOperation::Request,
        source_hardware_addr: mac,
        source_protocol_addr: addr,
        target_hardware_addr: [0; 6],
        target_protocol_addr: target,
    };
    repr.emit(&mut ArpPacket::new_unchecked(&mut buf[14..]));
}

#[cfg(test)]
mod tests {
    use super::*;
    use clua_pipeline::snapshot::PortInfo;

    const ROUTER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
    const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x10];

    fn snapshot() -> Snapshot {
        let port = |name: &str, role, mac_last, ip: [u8; 4], plen| PortInfo {
            name: name.into(),
            role,
            mac: [2, 0, 0, 0, 0, mac_last],
            ipv4: Some(Ipv4Addr::from(ip)),
            prefix_len: plen,
            mtu: 1500,
            flow_source: None,
        };
        Snapshot::build(
            1,
            vec![
                port("client", PortRole::Client, 1, [198, 51, 100, 2], 24),
                port("ic0", PortRole::Interconnect, 2, [192, 0, 2, 2], 25),
            ],
            vec![],
            vec![
                ("web".into(), Ipv4Addr::new(198, 51, 100, 100), vec![]),
                // An alias on the virtual subnet: routed (RIP), never proxy-ARPed (Table 6-1).
                ("virt".into(), Ipv4Addr::new(203, 0, 113, 5), vec![]),
            ],
            &[],
        )
        .unwrap()
    }

    /// An ARP request from the client, by hand: Ethernet broadcast, ARP who-has `target`.
    fn request(target: [u8; 4]) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&[0xff; 6]);
        f.extend_from_slice(&CLIENT_MAC);
        f.extend_from_slice(&[0x08, 0x06]);
        f.extend_from_slice(&[0, 1, 0x08, 0, 6, 4, 0, 1]); // Ethernet/IPv4, request
        f.extend_from_slice(&CLIENT_MAC);
        f.extend_from_slice(&[198, 51, 100, 10]);
        f.extend_from_slice(&[0; 6]);
        f.extend_from_slice(&target);
        f
    }

    #[test]
    fn request_for_alias_becomes_the_reply_byte_for_byte() {
        let s = snapshot();
        let mut f = request([198, 51, 100, 100]);
        f.extend_from_slice(&[0; 18]); // Ethernet padding to 60 bytes stays untouched
        assert_eq!(
            respond(&mut f, &s, &ArpView::default(), 0),
            ArpOutcome::Reply
        );
        let mut want = Vec::new();
        want.extend_from_slice(&CLIENT_MAC); // to the requester
        want.extend_from_slice(&ROUTER_MAC);
        want.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 2]); // reply
        want.extend_from_slice(&ROUTER_MAC);
        want.extend_from_slice(&[198, 51, 100, 100]); // the alias is at the router's MAC
        want.extend_from_slice(&CLIENT_MAC);
        want.extend_from_slice(&[198, 51, 100, 10]);
        want.extend_from_slice(&[0; 18]);
        assert_eq!(f, want);
    }

    #[test]
    fn vlan_tag_is_kept_in_the_reply() {
        let s = snapshot();
        let plain = request([198, 51, 100, 100]);
        let mut f = plain[..12].to_vec();
        f.extend_from_slice(&[0x81, 0x00, 0x00, 0x64]); // VLAN 100
        f.extend_from_slice(&plain[12..]);
        assert_eq!(
            respond(&mut f, &s, &ArpView::default(), 0),
            ArpOutcome::Reply
        );
        assert_eq!(&f[12..16], &[0x81, 0x00, 0x00, 0x64]);
        assert_eq!(&f[16..18], &[0x08, 0x06]);
        assert_eq!(&f[24..26], &[0, 2]);
        assert_eq!(&f[..6], &CLIENT_MAC);
    }

    #[test]
    fn only_client_subnet_aliases_and_own_addresses_are_answered() {
        let s = snapshot();
        // CA4 / Table 6-1: the virtual-subnet alias is not proxy-ARPed.
        let mut f = request([203, 0, 113, 5]);
        assert_eq!(
            respond(&mut f, &s, &ArpView::default(), 0),
            ArpOutcome::Ignored
        );
        assert_eq!(
            f,
            request([203, 0, 113, 5]),
            "ignored requests are left untouched"
        );
        // Another host on the LAN.
        assert_eq!(
            respond(&mut request([198, 51, 100, 7]), &s, &ArpView::default(), 0),
            ArpOutcome::Ignored
        );
        // Aliases are not answered on the interconnect (members must not learn them there)...
        assert_eq!(
            respond(
                &mut request([198, 51, 100, 100]),
                &s,
                &ArpView::default(),
                1
            ),
            ArpOutcome::Ignored
        );
        // ...but the router's own address is answered on its port.
        let mut own = request([192, 0, 2, 2]);
        assert_eq!(
            respond(&mut own, &s, &ArpView::default(), 1),
            ArpOutcome::Reply
        );
        assert_eq!(&own[22..28], &[2, 0, 0, 0, 0, 2]);
        // A reply is not answered; unknown port ignored; garbage is malformed.
        let mut reply = request([198, 51, 100, 100]);
        reply[21] = 2;
        assert_eq!(
            respond(&mut reply, &s, &ArpView::default(), 0),
            ArpOutcome::Ignored
        );
        assert_eq!(
            respond(
                &mut request([198, 51, 100, 100]),
                &s,
                &ArpView::default(),
                9
            ),
            ArpOutcome::Ignored
        );
        assert_eq!(
            respond(
                &mut request([198, 51, 100, 100])[..30].to_vec(),
                &s,
                &ArpView::default(),
                0
            ),
            ArpOutcome::Malformed
        );
        let mut bad_hlen = request([198, 51, 100, 100]);
        bad_hlen[18] = 8;
        assert_eq!(
            respond(&mut bad_hlen, &s, &ArpView::default(), 0),
            ArpOutcome::Malformed
        );
    }

    /// CA4/CA5: with several routers only the master answers, and with the alias's vMAC.
    #[test]
    fn only_the_master_answers_and_with_the_vmac() {
        let s = snapshot();
        let web = Ipv4Addr::new(198, 51, 100, 100);
        let not_master = ArpView {
            masters: Some(BTreeSet::new()),
            vmacs: BTreeMap::new(),
        };
        assert_eq!(
            respond(&mut request([198, 51, 100, 100]), &s, &not_master, 0),
            ArpOutcome::Ignored
        );
        // Its own address it answers whatever the election says.
        assert_eq!(
            respond(&mut request([198, 51, 100, 2]), &s, &not_master, 0),
            ArpOutcome::Reply
        );
        let vmac = [2, 0x40, 198, 51, 100, 100];
        let master = ArpView {
            masters: Some(BTreeSet::from([web])),
            vmacs: BTreeMap::from([(web, vmac)]),
        };
        let mut f = request([198, 51, 100, 100]);
        assert_eq!(respond(&mut f, &s, &master, 0), ArpOutcome::Reply);
        assert_eq!(
            &f[6..12],
            &vmac,
            "Ethernet source: switches learn the vMAC here"
        );
        assert_eq!(&f[22..28], &vmac, "ARP sender hardware address");
        assert_eq!(&f[28..32], &[198, 51, 100, 100]);
        assert_eq!(answers_for(&s, &master, 0, web), Some(vmac));
        assert_eq!(answers_for(&s, &master, 1, web), None);
    }

    #[test]
    fn gratuitous_arp_is_an_rfc5227_announcement() {
        let mut f = [0u8; ARP_FRAME_LEN];
        gratuitous(&mut f, ROUTER_MAC, Ipv4Addr::new(198, 51, 100, 100));
        let mut want = vec![0xff; 6];
        want.extend_from_slice(&ROUTER_MAC);
        want.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
        want.extend_from_slice(&ROUTER_MAC);
        want.extend_from_slice(&[198, 51, 100, 100]);
        want.extend_from_slice(&[0; 6]);
        want.extend_from_slice(&[198, 51, 100, 100]);
        assert_eq!(f.to_vec(), want);
    }
}

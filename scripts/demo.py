#!/usr/bin/env python3
"""The clua demo (run it through ./scripts/demo, which builds aliasd first)."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
import lab as labmod  # noqa: E402

WEB, CLUSTER, VX = "198.51.100.100", "198.51.100.101", "198.51.100.102"
ALIASES = [
    {"name": "web", "address": WEB,
     "members": [{"name": "m1", "selw": 3}, {"name": "m2", "selw": 2}, {"name": "m3", "selw": 1}]},
    {"name": "vx", "address": VX, "members": [{"name": "v1"}]},
    {"name": "cluster", "address": CLUSTER},
]
SERVICES = [
    {"name": "http", "port": 80, "proto": "tcp", "options": ["in_multi"]},
    {"name": "dns", "port": 53, "proto": "udp", "options": ["in_multi"]},
    {"name": "ssh", "port": 22, "proto": "tcp", "options": ["in_single"]},
]
WEIGHTS = {"m1": 3, "m2": 2, "m3": 1}


def say(msg=""):
    print(msg, flush=True)


def table(by_member, total, weights):
    wsum = sum(weights.values())
    say(f"    {'member':<8}{'conns':>7}{'share':>9}{'configured':>12}")
    for m in sorted(set(by_member) | set(weights)):
        n = by_member.get(m, 0)
        want = f"{100 * weights[m] / wsum:.1f}%" if m in weights else "-"
        say(f"    {m:<8}{n:>7}{100 * n / max(total, 1):>8.1f}%{want:>12}")


def main() -> int:
    binary = os.environ.get("CLUA_ALIASD", str(ROOT / "target/release/aliasd"))
    pmd = labmod.pmd_kind()
    with labmod.Lab(members=3, vxlan_members=1, aliases=[WEB, CLUSTER, VX]) as L:
        say(f"demo: lab {L.prefix} up: client 198.51.100.10, router {L.ns('rtr')}, members "
            f"m1 m2 m3 (l2, 192.0.2.11-13) and v1 (vxlan, 192.0.2.141)")
        cfg = L.write_aliasd_config(ALIASES, SERVICES, metrics="127.0.0.1:9470",
                                    default_alias="cluster")
        say(f"demo: starting aliasd on {pmd} (config {cfg})")
        d = L.start_aliasd(cfg, binary, timeout=30)
        say("    " + next((l for l in d.lines if "ready" in l), "ready"))

        say(f"\n1. ping the alias {WEB} (answered by the router in alias context, CA7)")
        say(f"    {'ok' if L.ping(L.cli, WEB, count=2) else 'NO ANSWER'}")

        say(f"\n2. 300 new TCP connections to web {WEB}:80 (in_multi, selw m1=3 m2=2 m3=1)")
        r = L.client("tcp", f"{WEB}:80", 300, extra=["--sequence"])
        seq = r.get("sequence") or []
        if seq:
            say("    first 24 connections went to: " + " ".join(seq[:24]))
        say(f"    {r['ok']} completed, {r['failed']} failed, in {r.get('elapsed', 0):.1f}s; "
            "every handshake completed from the alias address (direct server return, CA12)")
        table(r["by_member"], r["ok"], WEIGHTS)

        say(f"\n3. 60 UDP datagrams to web {WEB}:53 (in_multi: round robin per datagram)")
        u = L.client("udp", f"{WEB}:53", 60)
        say(f"    {u['ok']} answered from the alias, {u['failed']} failed")
        table(u["by_member"], u["ok"], WEIGHTS)

        say(f"\n4. 20 TCP connections to web {WEB}:22 (in_single: one active member)")
        s = L.client("tcp", f"{WEB}:22", 20)
        say(f"    {s['ok']} completed: {s['by_member']}")

        say(f"\n5. 30 TCP connections to alias vx {VX}:80, whose member is reached over VXLAN")
        v = L.client("tcp", f"{VX}:80", 30)
        say(f"    {v['ok']} completed: {v['by_member']}")

        say("\n6. cluamgr, live: `cluamgr -s web`, then m1 drops to selw=1 (new flows only)")
        sock = str(L.out_dir / "aliasd.sock")
        cluamgr = [str(ROOT / "target/release/cluamgr"), "--socket", sock]
        show = subprocess.run(cluamgr + ["-s", "web"], capture_output=True, text=True)
        for line in show.stdout.strip().splitlines():
            say("    " + line)
        ch = subprocess.run(cluamgr + ["-a", "alias=web,selw=1", "--member", "m1"],
                            capture_output=True, text=True)
        say("    $ cluamgr -a alias=web,selw=1 --member m1")
        for line in (ch.stdout + ch.stderr).strip().splitlines():
            say("    " + line)
        w = L.client("tcp", f"{WEB}:80", 120)
        say(f"    120 new connections: {w['ok']} completed")
        table(w["by_member"], w["ok"], {"m1": 1, "m2": 2, "m3": 1})
        say(f"    $ cluamgr simulate tcp 198.51.100.10:40000 {WEB}:80 --ack   (which member, and why;"
            " changes nothing)")
        sim = subprocess.run(cluamgr + ["simulate", "tcp", "198.51.100.10:40000", f"{WEB}:80",
                                        "--ack"], capture_output=True, text=True)
        for line in (sim.stdout + sim.stderr).strip().splitlines():
            say("    " + line)

        js = subprocess.run(cluamgr + ["-s", "web", "--json"], capture_output=True, text=True)
        say("    $ cluamgr -s web --json   (the stable JSON form for scripts, docs/cluamgr.md)")
        try:
            alias = json.loads(js.stdout)["aliases"][0]
            say("    web: " + ", ".join(f"{m['name']} selw={m['selw']} {m['state']}"
                                       for m in alias["members"])
                + f"; {alias['flows']} new flows, {alias['packets']} packets")
            json_ok = js.returncode == 0
        except (ValueError, KeyError, IndexError):
            say("    " + (js.stdout + js.stderr).strip())
            json_ok = False
        pcap = L.out_dir / "demo-capture.pcapng"
        say(f"    $ cluamgr capture client --rx -c 6 -w {pcap.name}   (pcapng, bounded; then tcpdump -r)")
        cap = subprocess.Popen(cluamgr + ["capture", "client", "--rx", "-c", "6", "--seconds", "10",
                                          "-w", str(pcap)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        time.sleep(0.5)
        L.client("tcp", f"{WEB}:80", 5)
        cap_out = cap.communicate(timeout=20)[0]
        for line in cap_out.strip().splitlines():
            say("    " + line)
        td = subprocess.run(["tcpdump", "-nr", str(pcap)], capture_output=True, text=True)
        for line in td.stdout.strip().splitlines()[:6]:
            say("      " + line)
        capture_ok = cap.returncode == 0 and len(td.stdout.strip().splitlines()) == 6

        say("\n7. aliasd's Prometheus endpoint (selected lines)")
        m = L.run(L.rtr, "curl", "-s", "127.0.0.1:9470/metrics", check=False).stdout
        for line in m.splitlines():
            if line.startswith(("clua_member_flows_total", "clua_arp_replies", "clua_icmp_echo",
                                "clua_forwarded_packets_total", "clua_gratuitous")):
                say("    " + line)
        d.stop(timeout=10)
        ok = (r["ok"] == 300 and u["ok"] == 60 and s["ok"] == 20 and v["ok"] == 30
              and len(s["by_member"]) == 1 and ch.returncode == 0 and w["ok"] == 120
              and sim.returncode == 0 and json_ok and capture_ok)
    say("\ndemo: lab removed.")
    ok2 = routers_part(binary)
    ok3 = workers_part(binary)
    ok = ok and ok2 and ok3
    say(f"\ndemo: {'Everything worked.' if ok else 'SOMETHING FAILED (see above).'}")
    return 0 if ok else 1


def routers_part(binary) -> bool:
    """Two alias routers (issue 8): proxy-ARP election by rpri with a vMAC, RIP routes at a real
    BIRD with ECMP and BFD, and a takeover when the master is killed."""
    web = "198.51.100.100"
    virt, virt_mask, virt_net = "203.0.113.10", "255.255.255.128", "203.0.113.0/25"
    with labmod.Lab(members=2, routers=2, far=True, aliases=[web, virt], tcp_ports=(80,),
                    udp_ports=(), hold_ports=(8080,)) as L:
        say(f"\n8. two alias routers r1 (rpri 100) and r2 (rpri 10), lab {L.prefix}: the router "
            "protocol elects r1 proxy-ARP master of web (with a vMAC); both advertise web and "
            f"the virtual alias {virt} by RIP to BIRD in the gateway, with BFD")
        L.start_bird(bfd=True)
        routers = {}
        for k, rpri in ((1, 100), (2, 10)):
            aliases = [{"name": "web", "address": web, "members": ["m1", "m2"], "rpri": rpri,
                        "vmac": True},
                       {"name": "virt", "address": virt, "virtual": True, "mask": virt_mask,
                        "members": ["m1", "m2"]}]
            cfg = L.write_aliasd_config(
                aliases, [{"name": "http", "port": 80, "proto": "tcp", "options": ["in_multi"]},
                          {"name": "hold", "port": 8080, "proto": "tcp",
                           "options": ["in_multi"]}],
                router=k, node=f"r{k}", default_alias="web",
                rip={"update_secs": 5, "jitter_secs": 1},
                bfd={"peers": [labmod.GW_CLI_IP]})
            routers[k] = L.start_aliasd(cfg, binary, timeout=30, router=k)
        deadline = time.monotonic() + 15
        routes = {}
        while time.monotonic() < deadline:
            routes = L.bird_routes()
            if len(routes.get(f"{web}/32", [])) == 2 and len(routes.get(virt_net, [])) == 2:
                break
            time.sleep(0.2)
        say("    BIRD's RIP routes (next hops = the routers' client addresses, ECMP):")
        for prefix, hops in sorted(routes.items()):
            say(f"      {prefix:<20} via {', '.join(hops)}")
        answer = L.arp_answerers(web)
        before = L.client_neigh(web) if L.ping(L.cli, web, count=1) else None
        say(f"    ARP for {web}: answered by {len(answer)} router(s) with {', '.join(answer)}; "
            f"the client's ARP entry: {before}")
        c = L.client("tcp", f"{web}:80", 40)
        far = L.client("tcp", f"{virt}:80", 20, ns=L.far)
        say(f"    40 connections from the client LAN: {c['ok']} completed {c['by_member']}; "
            f"20 from the far client through BIRD to {virt}: {far['ok']} completed")
        show = L.cluamgr("-s", "web", router=2).stdout
        for line in show.splitlines():
            if "arp master" in line or "vmac" in line or line.startswith("alias"):
                say("    r2$ cluamgr -s web: " + line.strip())

        ll = L.start_longlived(f"{web}:8080", count=10)
        held = ll.ready["members"]
        say(f"    10 long-lived connections to {web}:8080, each sending a line every 100 ms: "
            f"on {' '.join(str(m) for m in held)}")
        time.sleep(1.5)  # r1 hands each established flow to r2 (issue 9)

        say("\n9. SIGKILL r1: r2 takes web over after the dead interval (3 x 100 ms) and "
            "announces it from the same vMAC; BFD tells BIRD to drop r1's paths")
        t0 = routers[1].kill()
        first = None
        while time.monotonic() - t0 < 5:
            r = L.client("tcp", f"{web}:80", 1, timeout=0.2, max_failures=0)
            if r["ok"]:
                first = time.monotonic() - t0
                break
        routers[1].stop(timeout=5)
        after = L.client_neigh(web)
        say(f"    first new connection through r2 {first * 1000:.0f} ms after the kill"
            if first else "    NO connection through r2")
        say(f"    the client's ARP entry for {web}: {after} "
            f"({'unchanged' if after == before else 'CHANGED'})")
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            routes = L.bird_routes()
            if all(labmod.RTR_CLI_IPS[1] not in h for h in routes.values()):
                break
            time.sleep(0.05)
        took = time.monotonic() - t0
        for prefix, hops in sorted(routes.items()):
            say(f"      {prefix:<20} via {', '.join(hops)}")
        say(f"    BIRD dropped r1's paths {took * 1000:.0f} ms after the kill (RIP alone: 180 s)")
        c2 = L.client("tcp", f"{web}:80", 20)
        say(f"    20 more connections: {c2['ok']} completed")
        ll.wait_all_replied_after(time.monotonic(), timeout=10)
        res = ll.finish()
        kept = [x for x, m in zip(res["conns"], held) if m and not x["error"] and x["member"] == m]
        gap = max((x["max_gap"] or 0 for x in kept), default=0)
        say(f"    long-lived connections: {len(kept)} of {len(held)} carried on on their member "
            f"through the takeover (r1 had handed their flows to r2), the longest pause "
            f"{gap * 1000:.0f} ms")
        for x in res["conns"]:
            if x["error"]:
                say(f"      connection {x['i']} ({x['member']}): {x['error']}")
        routers[2].stop(timeout=10)
        ok = (len(answer) == 1 and answer[0] == before and c["ok"] == 40 and far["ok"] == 20
              and first is not None and after == before and c2["ok"] == 20
              and len(kept) == len(held) == 10
              and all(labmod.RTR_CLI_IPS[1] not in h for h in routes.values()))
    say("\ndemo: second lab removed.")
    return ok



FTP = "198.51.100.104"


def workers_part(binary) -> bool:
    """Issue 12: one aliasd with two workers (RSS by the AF_PACKET fanout hash in the lab,
    docs/workers.md): connections spread over both, each handled whole by one, the totals
    summed; passive FTP with wildcard_sticky keeps each client's data connections on its
    control connection's member although RSS gives them to either worker (the affinity is
    copied between workers)."""
    say("\n== Two workers (issue 12): one router, two forwarding lcores")
    aliases = [{"name": "web", "address": WEB,
                "members": [{"name": "m1", "selw": 3}, {"name": "m2", "selw": 2},
                            {"name": "m3", "selw": 1}]},
               {"name": "ftp", "address": FTP,
                "members": [{"name": "m1", "selw": 2}, {"name": "m2", "selw": 1}]}]
    with labmod.Lab(members=3, vxlan_members=0, aliases=[WEB, FTP], workers=2) as L:
        cfg = L.write_aliasd_config(aliases, services_lines=[
            "http 80/tcp in_multi", "ftp 21/tcp in_multi,wildcard_sticky"],
            default_alias="web", binary=binary)
        say(f"demo: starting aliasd with 2 workers on {L.pmd} ({L.pmd_queues} queues per port)")
        d = L.start_aliasd(cfg, binary, timeout=30)
        say("    " + next((l for l in d.lines if "ready" in l), "ready"))
        sock = str(L.out_dir / "aliasd.sock")
        cluamgr = [str(ROOT / "target/release/cluamgr"), "--socket", sock]

        def workers():
            st = json.loads(subprocess.run(cluamgr + ["-s", "--json"], capture_output=True,
                                           text=True).stdout)
            return st["workers"]

        before = workers()
        say(f"\n1. 200 new TCP connections to web {WEB}:80 (in_multi, selw m1=3 m2=2 m3=1)")
        r = L.client("tcp", f"{WEB}:80", 200)
        after = workers()
        say(f"    {r['ok']} completed, {r['failed']} failed")
        table(r["by_member"], r["ok"], WEIGHTS)
        say(f"    {'worker':<8}{'new flows':>10}{'hits':>8}{'rx':>8}")
        inserts = []
        for b, a in zip(before, after):
            n = a["conn_inserts"] - b["conn_inserts"]
            inserts.append(n)
            say(f"    {a['worker']:<8}{n:>10}{a['conn_hits'] - b['conn_hits']:>8}"
                f"{a['rx_packets'] - b['rx_packets']:>8}")
        say("    every connection's packets found their entry on the worker that opened it:"
            f" {sum(inserts)} entries for {r['ok']} connections; each worker round-robins its"
            " own share")
        say(f"\n2. 12 passive-FTP clients to ftp {FTP}:21 (wildcard_sticky, selw m1=2 m2=1);"
            " each client's data connections (unlisted ports) have their own 4-tuples")
        L.start_ftp(alias=FTP)
        try:
            got = L.ftp_clients(FTP, L.add_client_addresses(12))
        finally:
            L.stop_ftp()
        good = [c for c in got if not c.get("error") and c.get("data") == [c.get("control")] * 4]
        adopted = L.metric_sum("clua_affinities_adopted_total") or 0
        say(f"    {len(good)} of {len(got)} clients: all 4 data connections on the member of"
            f" their control connection; {int(adopted)} affinities copied to the other worker")
        d.stop(timeout=10)
        ok = (r["ok"] == 200 and sum(inserts) == 200 and min(inserts) > 0
              and len(good) == len(got) == 12)
    say("demo: two-worker lab removed.")
    return ok

if __name__ == "__main__":
    sys.exit(main())

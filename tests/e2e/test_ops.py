"""Dashboards and alerts (issue 11): the Prometheus rules in ops/prometheus and the Grafana
dashboard in ops/grafana, checked against ONE real aliasd's /metrics with the real promtool.

One aliasd runs as router node r1 with [rip], [bfd] (its peer: BIRD 2 in the lab gateway) and
[sync], so every family the rules and the dashboard name is on /metrics: member state (CA3),
ARP master per alias (CA4), RIP/BFD (CA6), flow hand-off (SC4).
promtool missing is a failure, not a skip: scripts/setup installs it (Debian package
prometheus)."""

import json
import re
import shutil
import subprocess
import time

import pytest

import lab as labmod

ROOT = labmod.ROOT
RULES = ROOT / "ops/prometheus/clua-alerts.yml"
RULE_TESTS = ROOT / "ops/prometheus/clua-alerts.test.yml"
DASHBOARD = ROOT / "ops/grafana/clua-dashboard.json"

WEB = "198.51.100.100"
LAB = dict(members=2, vxlan_members=0, aliases=[WEB], tcp_ports=(80,), udp_ports=())
ALIASES = [{"name": "web", "address": WEB, "members": ["m1", "m2"]}]
SERVICES = [{"name": "http", "port": 80, "proto": "tcp", "options": ["in_multi"]}]
METRICS = "127.0.0.1:9470"

# PromQL words that look like metric names but are not.
PROMQL_WORDS = {
    "sum", "min", "max", "avg", "count", "rate", "irate", "increase", "by", "without", "on",
    "ignoring", "group_left", "group_right", "and", "or", "unless", "bool", "offset", "abs",
    "topk", "bottomk", "clamp_min", "clamp_max", "absent", "changes", "resets", "delta",
    "max_over_time", "min_over_time", "avg_over_time", "label_replace", "vector", "time",
    "histogram_quantile", "sum_over_time", "count_over_time", "deriv",
}
# Series Prometheus itself writes for every scrape, not on /metrics.
SCRAPE_SERIES = {"up"}


def promtool() -> str:
    path = shutil.which("promtool")
    assert path, "promtool not installed: run ./scripts/setup (Debian package prometheus)"
    return path


def run_promtool(*args, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([promtool(), *args], input=stdin, capture_output=True, text=True,
                          timeout=60)


@pytest.fixture(scope="module")
def live_metrics(aliasd_bin, lab) -> str:
    """The /metrics text of a running aliasd after a little traffic through web:80."""
    cfg = lab.write_aliasd_config(
        ALIASES, SERVICES, metrics=METRICS, default_alias="web", node="r1",
        rip={"mode": "broadcast", "update_secs": 5, "jitter_secs": 1},
        bfd={"peers": [labmod.GW_CLI_IP], "min_tx_ms": 100, "min_rx_ms": 100,
             "multiplier": 3},
        sync={})
    lab.start_bird(rip_auth=None, bfd=True)
    d = lab.start_aliasd(cfg, aliasd_bin, timeout=30)
    try:
        res = lab.client("tcp", f"{WEB}:80", count=20, timeout=2)
        assert res["ok"] == 20, f"traffic through {WEB}:80 failed: {res}\n{d.stderr[-2000:]}"
        # aliasd's BFD is passive (CA6): its families appear once BIRD, having heard aliasd's
        # RIP, opens the session. Wait for it, bounded.
        deadline = time.monotonic() + 10
        while True:
            text = lab.metrics()
            if "clua_bfd_session_up" in text or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    finally:
        d.stop(timeout=10)
        lab.stop_bird()
        (lab.out_dir / "aliasd.stderr").write_text(d.stderr)
    assert "# TYPE" in text, f"no /metrics text from aliasd\n{d.stderr[-2000:]}"
    (lab.out_dir / "metrics.txt").write_text(text)
    return text


def metric_names(text: str) -> set:
    return {m.group(1) for m in re.finditer(r"^# TYPE (\S+) \S+$", text, re.M)}


def expr_metric_names(expr: str) -> set:
    """Metric names in a PromQL expression: identifiers not inside {...}, by (...), or quotes,
    and not PromQL keywords or functions."""
    e = re.sub(r'"[^"]*"', '""', expr)
    e = re.sub(r"\{[^}]*\}", "{}", e)
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    e = re.sub(r"\[[^\]]*\]", "[]", e)
    names = set(re.findall(r"(?<![0-9.])[a-zA-Z_:][a-zA-Z0-9_:]*", e))
    return {n for n in names if n not in PROMQL_WORDS}


def rule_exprs() -> list:
    """(alert, expr) of every rule in the rules file. Read line by line (no YAML module in
    scripts/setup): an 'expr:' is a plain scalar on its line or a block scalar ('|') whose lines
    are indented deeper than the key."""
    out = []
    alert = None
    lines = RULES.read_text().splitlines()
    for i, line in enumerate(lines):
        if m := re.match(r"^\s*- alert: (\S+)\s*$", line):
            alert = m.group(1)
        elif (m := re.match(r"^(\s*)expr: (.*)$", line)) and alert:
            indent, value = len(m.group(1)), m.group(2).strip()
            if value.startswith("|") or value.startswith(">"):
                body = []
                for nxt in lines[i + 1:]:
                    if nxt.strip() and len(nxt) - len(nxt.lstrip()) <= indent:
                        break
                    body.append(nxt.strip())
                value = " ".join(x for x in body if x)
            out.append((alert, value))
            alert = None
    return out


def dashboard_targets(dash: dict) -> list:
    """(panel title, panel, target) for every target of every panel, rows' panels included."""
    out = []

    def walk(panels):
        for p in panels:
            if p.get("type") == "row":
                walk(p.get("panels", []))
                continue
            for t in p.get("targets", []):
                out.append((p.get("title", "?"), p, t))
            if not p.get("targets"):
                out.append((p.get("title", "?"), p, None))
    walk(dash.get("panels", []))
    return out


def test_promtool_check_metrics(live_metrics):
    """(a) aliasd's real /metrics text follows Prometheus conventions (counters end in _total,
    units in names, HELP on every family): promtool check metrics reports nothing."""
    r = run_promtool("check", "metrics", stdin=live_metrics)
    assert r.returncode == 0 and not (r.stdout + r.stderr).strip(), (
        f"promtool check metrics (rc {r.returncode}):\n{r.stdout}{r.stderr}")


def test_promtool_check_rules():
    """(b) the alerting rules parse and are valid PromQL."""
    r = run_promtool("check", "rules", str(RULES))
    assert r.returncode == 0, f"promtool check rules:\n{r.stdout}{r.stderr}"
    assert "SUCCESS" in r.stdout, r.stdout + r.stderr


def test_promtool_test_rules():
    """(c) every alert fires on the series meant to fire it and stays silent on the others."""
    r = subprocess.run([promtool(), "test", "rules", RULE_TESTS.name], capture_output=True,
                       text=True, timeout=60, cwd=RULE_TESTS.parent)
    assert r.returncode == 0, f"promtool test rules:\n{r.stdout}{r.stderr}"
    assert "SUCCESS" in r.stdout, r.stdout + r.stderr
    # Every alert of the rules file has at least one test case (firing) in the test file.
    tests = RULE_TESTS.read_text()
    for alert, _ in rule_exprs():
        assert f"alertname: {alert}" in tests, f"alert {alert} has no promtool test"


def pmd_series(lab) -> set:
    """Metric names a PMD other than the lab's may export: the AF_XDP sockets' counters exist
    only on af_xdp ports (a lab with several workers runs af_packet, docs/workers.md)."""
    return set() if lab.pmd == "af_xdp" else {
        f"clua_port_xsk_{q}_total" for q in
        ("rx_ring_full", "fill_ring_empty", "rx_dropped", "rx_invalid_descs", "tx_invalid_descs",
         "tx_ring_empty")}


def test_rule_metrics_exist(live_metrics, lab):
    """(d) every metric name in the rules is on the live /metrics, so the rules cannot rot."""
    live = metric_names(live_metrics) | pmd_series(lab)
    exprs = rule_exprs()
    assert len(exprs) >= 6, f"expected at least 6 alerts in {RULES}, found {exprs}"
    for alert, expr in exprs:
        used = expr_metric_names(expr)
        assert used, f"alert {alert}: no metric in {expr!r}"
        missing = used - live - SCRAPE_SERIES
        assert not missing, f"alert {alert} uses {sorted(missing)}, not on /metrics"


def test_dashboard_metrics_exist(live_metrics, lab):
    """(d) every metric name in the dashboard's expressions is on the live /metrics."""
    live = metric_names(live_metrics) | pmd_series(lab)
    dash = json.loads(DASHBOARD.read_text())
    used_all = set()
    for title, _, t in dashboard_targets(dash):
        if t is None:
            continue
        used = expr_metric_names(t.get("expr", ""))
        assert used, f"panel {title!r}: no metric in {t.get('expr')!r}"
        missing = used - live
        assert not missing, f"panel {title!r} uses {sorted(missing)}, not on /metrics"
        used_all |= used
    # The list: rates per worker and member, drops by reason, table, member and router
    # state, RIP/BFD, hand-off.
    for want in ("clua_rx_packets_total", "clua_member_packets_total",
                 "clua_dropped_packets_total", "clua_conn_inserts_total",
                 "clua_conn_evictions_total", "clua_member_up", "clua_alias_arp_master",
                 "clua_router_peers", "clua_rip_routes", "clua_bfd_session_up",
                 "clua_handoff_records_emitted_total"):
        assert want in used_all, f"the dashboard shows no {want}"


def test_dashboard_is_importable():
    """(e) the dashboard JSON parses; every panel has a datasource (the template variable) and
    a non-empty expr."""
    dash = json.loads(DASHBOARD.read_text())
    assert dash.get("title") and dash.get("uid"), "dashboard without title/uid"
    assert isinstance(dash.get("schemaVersion"), int) and dash["schemaVersion"] >= 36
    tvars = {v["name"]: v for v in dash.get("templating", {}).get("list", [])}
    assert "datasource" in tvars and tvars["datasource"]["type"] == "datasource", tvars
    assert tvars["datasource"]["query"] == "prometheus"
    panels = dashboard_targets(dash)
    assert len(panels) >= 10, f"only {len(panels)} panel targets"
    ids = [p.get("id") for p in {id(p): p for _, p, _ in panels}.values()]
    assert len(set(ids)) == len(ids), f"panel ids not unique: {ids}"
    for title, p, t in panels:
        assert t is not None, f"panel {title!r} has no targets"
        for ds in (p.get("datasource"), t.get("datasource")):
            assert isinstance(ds, dict) and ds.get("type") == "prometheus" \
                and ds.get("uid") == "${datasource}", f"panel {title!r}: datasource {ds}"
        assert t.get("expr", "").strip(), f"panel {title!r}: empty expr"


def test_dashboard_exprs_are_promql(tmp_path):
    """(e) every dashboard expression is valid PromQL: written as recording rules (Grafana's
    variables replaced by what they expand to) and checked by promtool check rules."""
    dash = json.loads(DASHBOARD.read_text())
    lines = ["groups:", "  - name: clua_dashboard", "    rules:"]
    n = 0
    for title, _, t in dashboard_targets(dash):
        expr = t["expr"].replace("$__rate_interval", "2m").replace("$instance", ".*")
        assert "$" not in expr, f"panel {title!r}: unknown variable in {expr!r}"
        n += 1
        lines += [f"      - record: clua_dashboard:panel{n}", f"        expr: {json.dumps(expr)}"]
    f = tmp_path / "dashboard-rules.yml"
    f.write_text("\n".join(lines) + "\n")
    r = run_promtool("check", "rules", str(f))
    assert r.returncode == 0 and f"{n} rules found" in r.stdout, (
        f"promtool check rules on the dashboard's expressions:\n{r.stdout}{r.stderr}")

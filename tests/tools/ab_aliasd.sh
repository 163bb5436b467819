#!/usr/bin/env bash
# tests/tools/ab_aliasd.sh CONFIG BINARY... : A/B of aliasd binaries on one scripts/bench
# configuration (docs/performance.md "Quiet re-run"). Each binary in turn, in the order given
# (repeat them to alternate): start it, wait for "aliasd: ready", warm up 3 s, then the
# clua_rx_packets_total delta over a 4 s window, as Mpps; stop it with SIGINT. The config's
# PMDs (net_pcap infinite_rx -> net_null, --no-pci) touch no interface. An older binary may
# need the config's newer sections removed (e.g. [sync] before issue 9).
set -euo pipefail
conf=${1:?usage: ab_aliasd.sh CONFIG BINARY...}; shift
port=$(grep -o '127.0.0.1:[0-9]*' "$conf" | head -1 | cut -d: -f2)
err=$(mktemp); trap 'rm -f "$err"' EXIT
rx() { curl -sf "http://127.0.0.1:$port/metrics" | awk '/^clua_rx_packets_total/ {s += $2} END {printf "%d", s}'; }
for bin in "$@"; do
    "$bin" --config "$conf" 2>"$err" &
    p=$!
    for _ in $(seq 1 300); do grep -q "aliasd: ready" "$err" && break; kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    if ! kill -0 "$p" 2>/dev/null; then echo "$bin: did not start: $(tail -3 "$err")"; continue; fi
    sleep 3
    a=$(rx); t0=$(date +%s.%N); sleep 4; b=$(rx); t1=$(date +%s.%N)
    kill -INT "$p"; wait "$p" 2>/dev/null || true
    awk -v n="$bin" -v a="$a" -v b="$b" -v t0="$t0" -v t1="$t1" 'BEGIN { printf "%s %.3f Mpps\n", n, (b - a) / (t1 - t0) / 1e6 }'
    sleep 1
done

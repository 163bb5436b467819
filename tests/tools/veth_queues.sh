#!/bin/sh
# Which RX queue of a 2-queue veth do a peer's flows arrive on? (issue 12, docs/workers.md)
# Three receivers in namespace B, each a 2-queue veth with GRO on (veth's per-queue NAPI):
#   db: its peer da (2 queues) is the sender's own interface in A      (a direct pair)
#   bb: reached through a bridge from a 2-queue sender veth ba in A    (bridged, 2-queue sender)
#   sb: reached through a bridge from a 1-queue sender veth sa in A    (the lab's shape)
# 40 TCP connections and 40 UDP flows go to each; veth_queue_count.py counts per flow.
# Needs root; makes and removes its own namespaces only.
set -e
here=$(dirname "$0")
P=vq$$
A=$P-a B=$P-b S=$P-s
for n in $A $B $S; do ip netns add $n; done
trap 'for n in $A $B $S; do ip netns del $n; done' EXIT
Q="numtxqueues 2 numrxqueues 2"
ip -n $A link add name da $Q type veth peer name db $Q netns $B
ip -n $A link add name ba $Q type veth peer name bas $Q netns $S
ip -n $B link add name bb $Q type veth peer name bbs $Q netns $S
ip -n $A link add name sa type veth peer name sas netns $S
ip -n $B link add name sb $Q type veth peer name sbs $Q netns $S
for br in br0 br1; do ip -n $S link add name $br type bridge; ip -n $S link set $br up; done
for i in bas bbs; do ip -n $S link set $i master br0 up; done
for i in sas sbs; do ip -n $S link set $i master br1 up; done
ip -n $A addr add 10.9.0.1/24 dev da; ip -n $B addr add 10.9.0.2/24 dev db
ip -n $A addr add 10.9.1.1/24 dev ba; ip -n $B addr add 10.9.1.2/24 dev bb
ip -n $A addr add 10.9.2.1/24 dev sa; ip -n $B addr add 10.9.2.2/24 dev sb
for i in lo da ba sa; do ip -n $A link set $i up; done
for i in lo db bb sb; do ip -n $B link set $i up; done
for i in db bb sb; do ip netns exec $B ethtool -K $i gro on >/dev/null; done
ip netns exec $B python3 -c '
import socket, threading, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 7000)); s.listen(100)
def serve():
    while True:
        c, _ = s.accept(); c.recv(100); c.sendall(b"x" * 10); c.close()
threading.Thread(target=serve, daemon=True).start()
time.sleep(40)' &
out=$(mktemp -d)
for i in db bb sb; do
    ip netns exec $B python3 "$here/veth_queue_count.py" $i 30 > "$out/$i.json" &
done
sleep 1.5
for dst in 10.9.0.2 10.9.1.2 10.9.2.2; do
    ip netns exec $A python3 -c "
import socket
for i in range(40):
    s = socket.create_connection(('$dst', 7000)); s.sendall(b'hi'); s.recv(100); s.close()
for i in range(40):
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.sendto(b'x', ('$dst', 9999)); u.close()
"
done
wait $(jobs -p | tail -3) 2>/dev/null || true; sleep 0
cat "$out/db.json" "$out/bb.json" "$out/sb.json"
rm -r "$out"

#!/usr/bin/env bash
# Checks the plumbing the live test (sensor/tests/live_netns.rs) relies on, without the sensor:
# a private network namespace with a veth pair, tcpdump on one end, tcpreplay into the other,
# and every packet of the capture arriving (and nothing else: IPv6 is off in the namespace so
# the kernel sends no chatter of its own). Run as root: tests/netns-plumbing.sh [capture.pcap]
# Exit 0 when the packet counts match; the namespace is removed on every exit path.
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
pcap="${1:-$here/../shared/corpus/zeek/cases/wikipedia-default/trace.pcap}"
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root"; exit 0; }
for tool in ip tcpdump tcpreplay; do
  command -v "$tool" >/dev/null || { echo "missing: $tool"; exit 1; }
done
[ -f "$pcap" ] || { echo "missing capture: $pcap"; exit 1; }

ns="osect-plumb-$$"; cap_if="opl$$s"; tx_if="opl$$r"
out="$(mktemp -d)"
cleanup() {
  [ -n "${dump_pid:-}" ] && kill "$dump_pid" 2>/dev/null || true
  ip netns del "$ns" 2>/dev/null || true
  rm -rf "$out"
}
trap cleanup EXIT

ip netns add "$ns"
ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
ip -n "$ns" link add "$cap_if" type veth peer name "$tx_if"
ip -n "$ns" link set "$cap_if" up
ip -n "$ns" link set "$tx_if" up

want="$(tcpdump -r "$pcap" -nn 2>/dev/null | wc -l)"
ip netns exec "$ns" tcpdump -i "$cap_if" -nn -U -w "$out/got.pcap" 2>"$out/tcpdump.err" &
dump_pid=$!
# Wait for tcpdump to listen (it prints "listening on" once the socket is bound).
for _ in $(seq 50); do grep -q "listening on" "$out/tcpdump.err" && break; sleep 0.1; done
ip netns exec "$ns" tcpreplay -q -i "$tx_if" "$pcap"
sleep 1
kill -INT "$dump_pid"; wait "$dump_pid" || true; dump_pid=
got="$(tcpdump -r "$out/got.pcap" -nn 2>/dev/null | wc -l)"
echo "sent $want packets from $pcap, captured $got on $cap_if in namespace $ns"
[ "$got" = "$want" ]

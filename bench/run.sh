#!/usr/bin/env bash
# `make bench`: throughput and memory of `osect-sensor replay` on synthetic captures.
#
# 1. builds release binaries (sensor + tools),
# 2. generates into bench-out/ (gitignored) a 1 M packet / 100 k flow capture and a capture
#    with 1 M flows open at once (first packet of every flow, then the rest),
# 3. measures packets/s of `osect-sensor replay FILE --out DIR` (best of 3, wall clock) against
#    the libpcap bare loop (best of 3) and the peak RSS of replay on both captures; the main
#    capture once with every analyzer on and once conn.log only (`[analyzers] enabled = false`),
# 4. with the shared ET Open copy present (../shared/corpus/suricata/et-open), replays the main
#    capture with `--rules` ET Open: rule-load time (a 1-packet replay), packets/s on the packet
#    path (wall minus load) as a ratio of the bare loop, and peak RSS,
# 5. prints a table and writes bench-out/results.txt.
# It reports; it never fails on a missed target (exit 0 unless the build itself fails).
#
# Knobs (environment): BENCH_PACKETS BENCH_FLOWS BENCH_CONCURRENT_PACKETS
# BENCH_CONCURRENT_FLOWS BENCH_RUNS BENCH_OUT BENCH_ET_OPEN (folder of emerging-*.rules).
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${BENCH_OUT:-bench-out}
PACKETS=${BENCH_PACKETS:-1000000}
FLOWS=${BENCH_FLOWS:-100000}
CPACKETS=${BENCH_CONCURRENT_PACKETS:-2000000}
CFLOWS=${BENCH_CONCURRENT_FLOWS:-1000000}
RUNS=${BENCH_RUNS:-3}
TARGET_RATIO=20   # replay, all analyzers: >= 20% of the bare loop
TARGET_CONN_RATIO=25  # replay, conn.log only: >= 25% of the bare loop
TARGET_RSS_MIB=64 # peak RSS <= 64 MiB
ET_OPEN=${BENCH_ET_OPEN:-../shared/corpus/suricata/et-open}
TARGET_DETECT_RATIO=10   # with ET Open: >= 10% of the bare loop
TARGET_DETECT_RSS_MIB=256

SENSOR=./target/release/osect-sensor
GEN=./target/release/osect-pcapgen
BARE=./target/release/pcap-bare-loop

echo "== building release binaries"
cargo build --release -p osect-sensor -p osect-tools

# Peak RSS comes from GNU time; install it if it is missing (Debian package `time`), else
# fall back to polling /proc/PID/status (VmHWM) ourselves.
TIME_BIN=/usr/bin/time
if [[ ! -x $TIME_BIN ]] && [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null 2>&1 || true
fi

mkdir -p "$OUT"
MAIN_PCAP=$OUT/bench-${PACKETS}p-${FLOWS}f.pcap
CONC_PCAP=$OUT/concurrent-${CPACKETS}p-${CFLOWS}f.pcap

# Generation is deterministic, so an existing file with the same name is the same capture.
gen() { # file packets flows [--concurrent]
  local file=$1 packets=$2 flows=$3
  shift 3
  if [[ -s $file ]]; then
    echo "== reusing $file"
  else
    echo "== generating $file"
    "$GEN" bench --packets "$packets" --flows "$flows" "$@" --out "$file.tmp"
    mv "$file.tmp" "$file"
  fi
}
gen "$MAIN_PCAP" "$PACKETS" "$FLOWS"
gen "$CONC_PCAP" "$CPACKETS" "$CFLOWS" --concurrent

now() { date +%s.%N; }
fsub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.6f", a - b }'; }

# run_measured LOG CMD...: runs CMD, leaves wall seconds in $WALL, peak RSS KiB in $RSS_KB and
# the exit code in $RC.
run_measured() {
  local log=$1
  shift
  local t0 t1
  RC=0
  RSS_KB=0
  t0=$(now)
  if [[ -x $TIME_BIN ]]; then
    "$TIME_BIN" -v -o "$log.time" "$@" >"$log" 2>&1 || RC=$?
    t1=$(now)
    RSS_KB=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$log.time" 2>/dev/null || echo 0)
  else
    "$@" >"$log" 2>&1 &
    local pid=$! hwm=0 v
    while kill -0 "$pid" 2>/dev/null; do
      v=$(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status" 2>/dev/null || true)
      [[ -n $v && $v -gt $hwm ]] && hwm=$v
      sleep 0.02
    done
    wait "$pid" || RC=$?
    t1=$(now)
    RSS_KB=$hwm
  fi
  WALL=$(fsub "$t1" "$t0")
  [[ -n $RSS_KB ]] || RSS_KB=0
}

# Bare libpcap loop: best of $RUNS.
echo "== bare loop (libpcap) x$RUNS on $MAIN_PCAP"
BARE_PPS=0
BARE_PACKETS=0
for i in $(seq "$RUNS"); do
  line=$("$BARE" "$MAIN_PCAP" 2>&1) || line="bare loop failed: $line"
  echo "   $line"
  pps=$(sed -n 's/.*pps=\([0-9.]*\).*/\1/p' <<<"$line")
  BARE_PACKETS=$(sed -n 's/.*packets=\([0-9]*\).*/\1/p' <<<"$line")
  if awk -v a="$pps" -v b="$BARE_PPS" 'BEGIN { exit !(a > b) }'; then BARE_PPS=$pps; fi
done

# Replay: best of $RUNS (wall time), peak RSS = the largest seen.
replay_bench() { # pcap packets runs -> BEST_PPS BEST_WALL MAX_RSS_KB STATUS
  local pcap=$1 packets=$2 runs=$3 i dir
  BEST_WALL=""
  SUMMARY="-"
  MAX_RSS_KB=0
  STATUS=ok
  for i in $(seq "$runs"); do
    dir=$OUT/replay-out
    rm -rf "$dir"
    run_measured "$OUT/replay-$(basename "$pcap" .pcap)-$i.log" "$SENSOR" replay "$pcap" --out "$dir" "${REPLAY_ARGS[@]}"
    if [[ $RC != 0 ]]; then
      STATUS="FAILED (exit $RC, see $OUT/replay-$(basename "$pcap" .pcap)-$i.log)"
      echo "   run $i: $STATUS"
      continue
    fi
    echo "   run $i: ${WALL}s, peak RSS $((RSS_KB / 1024)) MiB"
    # The sensor's own last line (packets, connections, records): shows e.g. flow-table
    # evictions when connections > flows.
    SUMMARY=$(grep -v '^\s*$' "$OUT/replay-$(basename "$pcap" .pcap)-$i.log" | tail -n 1 || true)
    if [[ -z $BEST_WALL ]] || awk -v a="$WALL" -v b="$BEST_WALL" 'BEGIN { exit !(a < b) }'; then BEST_WALL=$WALL; fi
    ((RSS_KB > MAX_RSS_KB)) && MAX_RSS_KB=$RSS_KB
  done
  rm -rf "$OUT/replay-out"
  if [[ -n $BEST_WALL ]]; then
    BEST_PPS=$(awk -v p="$packets" -v w="$BEST_WALL" 'BEGIN { printf "%.0f", (w > 0 ? p / w : 0) }')
    [[ $STATUS == ok ]] || STATUS="partly failed"
  else
    BEST_PPS=0
  fi
}

REPLAY_ARGS=()
echo "== replay x$RUNS on $MAIN_PCAP"
replay_bench "$MAIN_PCAP" "$PACKETS" "$RUNS"
R_PPS=$BEST_PPS R_WALL=${BEST_WALL:--} R_RSS=$MAX_RSS_KB R_STATUS=$STATUS R_SUMMARY=$SUMMARY

CONN_ONLY_CFG=$OUT/conn-only.toml
printf '[analyzers]\nenabled = false\n' >"$CONN_ONLY_CFG"
REPLAY_ARGS=(--config "$CONN_ONLY_CFG")
echo "== replay conn.log only x$RUNS on $MAIN_PCAP"
replay_bench "$MAIN_PCAP" "$PACKETS" "$RUNS"
K_PPS=$BEST_PPS K_STATUS=$STATUS K_SUMMARY=$SUMMARY
REPLAY_ARGS=()

echo "== replay x1 on $CONC_PCAP (memory with $CFLOWS flows open)"
replay_bench "$CONC_PCAP" "$CPACKETS" 1
C_PPS=$BEST_PPS C_WALL=${BEST_WALL:--} C_RSS=$MAX_RSS_KB C_STATUS=$STATUS C_SUMMARY=$SUMMARY

# Detection: the same capture against ET Open. Load time comes from a 1-packet replay; the
# packet-path rate is packets / (wall - load).
D_PPS=0 D_RATIO=0.0 D_LOAD=- D_RSS=0 D_STATUS="skipped (no $ET_OPEN)" D_SUMMARY=-
ET_RULES=()
if [[ -d $ET_OPEN ]]; then
  mapfile -t ET_RULES < <(ls "$ET_OPEN"/emerging-*.rules 2>/dev/null | grep -v emerging-deleted.rules)
fi
if ((${#ET_RULES[@]} > 0)); then
  REPLAY_ARGS=()
  for r in "${ET_RULES[@]}"; do REPLAY_ARGS+=(--rules "$r"); done
  ONE_PCAP=$OUT/one-packet.pcap
  gen "$ONE_PCAP" 1 1
  echo "== rule load (1-packet replay with ET Open, ${#ET_RULES[@]} files) x$RUNS"
  replay_bench "$ONE_PCAP" 1 "$RUNS"
  D_LOAD=${BEST_WALL:--}
  echo "== replay with ET Open x$RUNS on $MAIN_PCAP"
  replay_bench "$MAIN_PCAP" "$PACKETS" "$RUNS"
  D_STATUS=$STATUS D_RSS=$MAX_RSS_KB D_SUMMARY=$SUMMARY
  if [[ -n $BEST_WALL && $D_LOAD != - ]]; then
    D_PPS=$(awk -v p="$PACKETS" -v w="$BEST_WALL" -v l="$D_LOAD" 'BEGIN { d = w - l; printf "%.0f", (d > 0 ? p / d : 0) }')
  fi
  D_RATIO=$(awk -v r="$D_PPS" -v b="$BARE_PPS" 'BEGIN { printf "%.1f", (b > 0 ? 100 * r / b : 0) }')
  REPLAY_ARGS=()
fi

RATIO=$(awk -v r="$R_PPS" -v b="$BARE_PPS" 'BEGIN { printf "%.1f", (b > 0 ? 100 * r / b : 0) }')
K_RATIO=$(awk -v r="$K_PPS" -v b="$BARE_PPS" 'BEGIN { printf "%.1f", (b > 0 ? 100 * r / b : 0) }')
verdict() { # value op target
  if awk -v v="$1" -v t="$3" -v op="$2" 'BEGIN { exit !((op == ">=") ? v >= t : v <= t) }'; then echo "meets"; else echo "MISSES"; fi
}
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

{
  echo "osect-sensor benchmark  $(date -u +%Y-%m-%dT%H:%M:%SZ)  $(nproc) CPUs  $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
  echo "captures: $MAIN_PCAP ($PACKETS packets, $FLOWS flows; bare loop read $BARE_PACKETS)"
  echo "          $CONC_PCAP ($CPACKETS packets, $CFLOWS flows open at once)"
  echo
  printf '%-44s %16s  %-12s %s\n' "metric" "value" "target" "verdict"
  printf '%-44s %16s  %-12s %s\n' "bare libpcap loop, packets/s (best of $RUNS)" "$BARE_PPS" "-" "-"
  printf '%-44s %16s  %-12s %s\n' "replay, packets/s (best of $RUNS)" "$R_PPS" "-" "$R_STATUS"
  printf '%-44s %16s  %-12s %s\n' "replay, best wall time s" "$R_WALL" "-" "-"
  printf '%-44s %15s%%  %-12s %s\n' "replay / bare loop" "$RATIO" ">= ${TARGET_RATIO}%" "$(verdict "$RATIO" ">=" "$TARGET_RATIO")"
  printf '%-44s %16s  %-12s %s\n' "replay conn.log only, packets/s (best of $RUNS)" "$K_PPS" "-" "$K_STATUS"
  printf '%-44s %15s%%  %-12s %s\n' "replay conn.log only / bare loop" "$K_RATIO" ">= ${TARGET_CONN_RATIO}%" "$(verdict "$K_RATIO" ">=" "$TARGET_CONN_RATIO")"
  printf '%-44s %12s MiB  %-12s %s\n' "peak RSS replay, ${FLOWS} flows" "$(mib "$R_RSS")" "<= ${TARGET_RSS_MIB} MiB" "$(verdict "$(mib "$R_RSS")" "<=" "$TARGET_RSS_MIB")"
  printf '%-44s %12s MiB  %-12s %s\n' "peak RSS replay, ${CFLOWS} concurrent flows" "$(mib "$C_RSS")" "<= ${TARGET_RSS_MIB} MiB" "$(verdict "$(mib "$C_RSS")" "<=" "$TARGET_RSS_MIB")"
  printf '%-44s %16s  %-12s %s\n' "replay concurrent capture, packets/s (1 run)" "$C_PPS" "-" "$C_STATUS"
  printf '%-44s %16s  %-12s %s\n' "ET Open: rule load s (1-packet replay)" "$D_LOAD" "<= 30 s" "-"
  printf '%-44s %16s  %-12s %s\n' "ET Open: replay packets/s (wall - load)" "$D_PPS" "-" "$D_STATUS"
  printf '%-44s %15s%%  %-12s %s\n' "ET Open: replay / bare loop" "$D_RATIO" ">= ${TARGET_DETECT_RATIO}%" "$(verdict "$D_RATIO" ">=" "$TARGET_DETECT_RATIO")"
  printf '%-44s %12s MiB  %-12s %s\n' "ET Open: peak RSS, ${FLOWS} flows" "$(mib "$D_RSS")" "<= ${TARGET_DETECT_RSS_MIB} MiB" "$(verdict "$(mib "$D_RSS")" "<=" "$TARGET_DETECT_RSS_MIB")"
  echo
  echo "sensor said (main):       $R_SUMMARY"
  echo "sensor said (conn only):  $K_SUMMARY"
  echo "sensor said (concurrent): $C_SUMMARY"
  echo "sensor said (ET Open):    $D_SUMMARY"
} | tee "$OUT/results.txt"
echo
echo "results written to $OUT/results.txt"
exit 0

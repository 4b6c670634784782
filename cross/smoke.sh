#!/usr/bin/env bash
# Runs the cross-built binaries under qemu-user on the corpus captures and compares everything
# they write with what the host binary writes from the same input: `cross/smoke.sh [TARGET...]`.
#
#   replay --seed 1            every capture (each case of ../shared/corpus/zeek/cases and
#                              samples/sample.pcap): the logs must be equal
#   replay --seed 1 --bundles  samples/sample.pcap: interval folders and minute bundles (unpacked;
#                              member names, order and contents) must be equal
#   replay --seed 1 --bundles --rules
#                              samples/sample.pcap with a few rules of our own (detection on
#                              its thread, alerts across interval boundaries): the same
# Only the wall-clock lines differ between two runs: #open/#close in the logs and the
# timestamps of sensor.log, so those are left out of the comparison.
set -euo pipefail
. "$(dirname "$0")/common.sh"

targets=${*:-$CROSS_TARGETS_DEFAULT}
CORPUS=${CORPUS:-$ROOT/../shared/corpus/zeek/cases}
work=$(mktemp -d "${TMPDIR:-/tmp}/osect-smoke.XXXXXX")
trap 'rm -rf "$work"' EXIT

# Packet, stream, HTTP and DNS rules that fire on the sample (eve.json in every interval).
cat >"$work/smoke.rules" <<'RULES'
alert tcp any any -> any 502 (msg:"modbus request"; flow:to_server; dsize:>0; sid:1;)
alert http any any -> any any (msg:"http uri"; http.uri; content:"/"; sid:2;)
alert dns any any -> any any (msg:"plant query"; dns.query; content:"plant"; sid:3;)
alert tcp any any -> any any (msg:"tcp payload"; flow:established; content:"|00|"; sid:4;)
RULES

captures=("$ROOT/samples/sample.pcap")
if [ -d "$CORPUS" ]; then
    for p in "$CORPUS"/*/*.pcap; do captures+=("$p"); done
else
    log "no corpus at $CORPUS: only samples/sample.pcap"
fi

host_bin=${HOST_BIN:-}
if [ -z "$host_bin" ]; then
    cargo build -q -p osect-sensor
    host_bin=$ROOT/target/debug/osect-sensor
fi

# strip_wallclock DIR: drops the lines that carry the time of the run, not of the packets.
strip_wallclock() {
    find "$1" -name '*.log' -type f -exec sed -i '/^#open\t/d; /^#close\t/d' {} +
}

# run NAME CMD...: replays every capture into $work/NAME/<n>/whole and the sample, cut into
# intervals and bundles, into $work/NAME/bundles (bundles unpacked beside themselves).
run_all() {
    local name=$1 i=0 cap rc
    shift
    for cap in "${captures[@]}"; do
        local d=$work/$name/$i
        mkdir -p "$d"
        rc=0
        "$@" replay "$cap" --seed 1 --out "$d/whole" 2>"$d/whole.err" || rc=$?
        echo "$rc" >"$d/whole.rc"
        i=$((i + 1))
    done
    local b=$work/$name/bundles
    rc=0
    "$@" replay "$ROOT/samples/sample.pcap" --seed 1 --bundles --out "$b" 2>"$b.err" || rc=$?
    echo "$rc" >"$b.rc"
    # Log lines: wall-clock stamps, and the writer and spool threads interleave freely.
    rm -f "$b/sensor.log" "$b.err"
    local r=$work/$name/rules
    rc=0
    "$@" replay "$ROOT/samples/sample.pcap" --seed 1 --bundles --out "$r" \
        --rules "$work/smoke.rules" 2>"$r.err" || rc=$?
    echo "$rc" >"$r.rc"
    rm -f "$r/sensor.log" "$r.err"
    local z
    for z in "$b"/spool/*.tar.zst "$r"/spool/*.tar.zst; do
        mkdir -p "$z.d"
        zstd -qdc "$z" | tar -tv >"$z.d/members"
        zstd -qdc "$z" | tar -x -C "$z.d"
        rm "$z"
    done
    strip_wallclock "$work/$name"
    # Messages name the output folder, which differs per run.
    find "$work/$name" -name '*.err' -exec sed -i "s|$work/$name/||g" {} +
}

run_all host "$host_bin"
nfiles=$(find "$work/host" -type f | wc -l)
[ "$nfiles" -gt 0 ] || die "host produced nothing"
fail=0
for t in $targets; do
    bin=$ROOT/target/$t/$PROFILE/osect-sensor
    [ -x "$bin" ] || die "$bin missing: run cross/build.sh $t first"
    start=$SECONDS
    # shellcheck disable=SC2046
    run_all "$t" $(target_qemu "$t") "$bin"
    if diff -r "$work/host" "$work/$t" >"$work/$t.diff"; then
        log "$t: ${#captures[@]} captures, $nfiles files identical to the host's ($((SECONDS - start)) s under qemu-user)"
    else
        log "$t: output differs from the host's:"
        head -40 "$work/$t.diff" >&2
        fail=1
    fi
done
exit $fail

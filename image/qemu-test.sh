#!/usr/bin/env bash
# Boots the A/B image in qemu-system-aarch64 (-M virt, software emulation) and drives it over
# the serial console, as an operator at the gateway would:
#
#  boot 1  U-Boot picks slot A; the init script started the sensor as user osect with only
#          CAP_NET_RAW/CAP_NET_ADMIN and the slot was marked good; the live sensor (on lo)
#          bundles a ping into the spool on the data partition; a capture shipped on the data
#          partition is replayed into bundles; `diag` and `status --json` on the console;
#          switch-slot B, reboot
#  boot 2  slot B; the spool survived; B marked good; a killed sensor is restarted. B's
#          attempts are then used up
#          (BOOT_B_LEFT=0, as after three boots that never got healthy), reboot
#  boot 3  U-Boot falls back to slot A; poweroff
#  host    the data partition is read back from the disk image: the replayed bundles' logs
#          equal the host binary's replay of the same capture, the live bundle has the ping.
set -euo pipefail
LOG_TAG=image
. "$(dirname "$0")/../cross/common.sh"

OUT=${IMAGE_OUT:-$ROOT/target/image/out}
W=$(mktemp -d "${TMPDIR:-/tmp}/osect-qemu.XXXXXX")
UBOOT=/usr/lib/u-boot/qemu_arm64/u-boot.bin
BOOT_TIMEOUT=${BOOT_TIMEOUT:-180}
qpid=
cleanup() {
    [ -n "$qpid" ] && kill "$qpid" 2>/dev/null || true
    exec 3>&- 2>/dev/null || true
    if [ "${KEEP:-0}" = 1 ]; then log "kept $W"; else rm -rf "$W"; fi
}
trap cleanup EXIT
t0=$SECONDS
fail() {
    log "FAIL: $*"
    log "last console lines:"
    tail -n 40 "$W/console.log" | sed 's/^/    /' >&2
    [ -n "${CI_KEEP_CONSOLE:-}" ] && cp "$W/console.log" "$CI_KEEP_CONSOLE"
    exit 1
}
ok() { log "ok ($((SECONDS - t0)) s): $*"; }

# --- the image, with a data partition seeded as a site would provision it -----------------
mkdir -p "$W/data/osect" "$W/data/test"
cat >"$W/data/osect/sensor.toml" <<TOML
# Site config of the test: capture on loopback, short intervals so a bundle comes quickly.
[capture]
interface = "lo"
[output]
log_dir = "/data/osect/logs"
spool_dir = "/data/osect/spool"
sensor_log = "/data/osect/sensor.log"
interval_secs = 10
[flow]
icmp_inactivity_secs = 2
TOML
cp "$ROOT/samples/sample.pcap" "$W/data/test/sample.pcap"
"$ROOT/image/build.sh" --data "$W/data" >"$W/build.log" 2>&1 || {
    tail -20 "$W/build.log" >&2
    die "image build failed"
}
ok "image built"
cp --sparse=always "$OUT/disk.img" "$W/disk.img"

# --- qemu with the serial console on a pair of FIFOs ---------------------------------------
mkfifo "$W/console.in" "$W/console.out"
qemu-system-aarch64 -M virt -cpu cortex-a53 -smp 2 -m 512 -display none -monitor none \
    -nic none -bios "$UBOOT" \
    -drive if=none,id=d0,file="$W/disk.img",format=raw -device virtio-blk-pci,drive=d0 \
    -chardev pipe,id=c0,path="$W/console" -serial chardev:c0 >"$W/qemu.log" 2>&1 &
qpid=$!
cat "$W/console.out" >"$W/console.log" &
exec 3>"$W/console.in"

. "$ROOT/image/console.sh"
login() { # login SLOT
    wait_for "osect: booting slot $1" "$BOOT_TIMEOUT"
    ok "U-Boot chose slot $1"
    wait_for 'login:' "$BOOT_TIMEOUT"
    send root
    sleep 1
    run "cat /proc/cmdline"
    expect_out "rauc.slot=$1" "kernel command line"
    wait_for "osect: slot $1 marked good" 60
    ok "slot $1 booted, sensor started by init, slot marked good"
}
next_boot() { mark=$(console_size); }

# --- boot 1: slot A ----------------------------------------------------------------------
login A
run 'p=$(pidof osect-sensor); grep -E "^(Uid|CapEff|CapBnd|NoNewPrivs)" /proc/$p/status'
expect_out 'Uid:[[:space:]]+1000' "sensor user"
expect_out 'CapEff:[[:space:]]+0000000000003000' "effective capabilities"
expect_out 'CapBnd:[[:space:]]+0000000000003000' "bounding set"
ok "sensor runs as uid 1000 with only CAP_NET_RAW+CAP_NET_ADMIN"
run 'touch /probe 2>&1; grep " / " /proc/mounts; grep " /data " /proc/mounts; for f in /etc/p0f/p0f.fp /usr/share/osect/rules; do [ -e $f ] && echo "present:$f"; done'
expect_out 'Read-only file system' "read-only root"
expect_out ' /data ext4 rw' "data partition"
expect_out 'present:/etc/p0f/p0f.fp' "p0f fingerprint database"
expect_out 'present:/usr/share/osect/rules' "rules folder"
ok "root read-only, /data read-write; p0f.fp and the rules folder in place"

# The ping's connection ends 2 s after the last echo; the interval it is written in closes
# (counters with records_written >= 1), then that interval's bundle appears.
run 'ping -c 3 127.0.0.1 >/dev/null; i=0; while [ $i -lt 60 ] && ! grep -q "counters .* records_written=[1-9]" /data/osect/sensor.log; do sleep 1; i=$((i+1)); done; sleep 2; ls /data/osect/spool' 90
expect_out 'realtime-[0-9-]+:[0-9:]+\.tar\.zst' "live bundle"
ok "live capture bundled into /data/osect/spool"

run 'osect-sensor replay /data/test/sample.pcap --seed 1 --bundles --out /data/osect/replay && ls /data/osect/replay/spool' 120
[ "$rc" = 0 ] || fail "replay exited $rc"
expect_out 'realtime-2024-06-01-00:03:00\.tar\.zst' "replayed bundles"
ok "capture on the data partition replayed into bundles"

run 'osect-sensor diag' 30
echo "$out" | grep -v '@@rc=' >"$W/diag.txt"
expect_out 'slot A' "diag slot"
expect_out 'PASS sensor +running' "diag sensor check"
expect_out 'PASS interface lo: up' "diag interface check"
expect_out 'PASS counters' "diag counters check"
expect_out 'PASS disk' "diag disk check"
expect_out 'spool +/data/osect/spool: [1-9][0-9]* bundles' "diag spool"
[ "$rc" = 0 ] || fail "diag exited $rc"
ok "diag on the serial console, every check PASS or SKIP"
run 'osect-sensor status --json' 30
expect_out '"slot":"A"' "status --json slot"
expect_out '"sensor_pids":\[[0-9]+\]' "status --json pids"

run '/usr/libexec/osect/switch-slot B && fw_printenv BOOT_ORDER'
expect_out 'BOOT_ORDER=B A' "switch-slot"
next_boot
send reboot

# --- boot 2: slot B ----------------------------------------------------------------------
login B
run 'ls /data/osect/spool /data/osect/replay/spool; fw_printenv BOOT_B_LEFT; osect-sensor status'
expect_out 'realtime-2024-06-01-00:03:00\.tar\.zst' "replayed bundles after reboot"
expect_out 'BOOT_B_LEFT=3' "slot B marked good"
expect_out 'slot B' "status on slot B"
ok "slot B booted; spool survived the reboot"
run 'kill -9 $(pidof osect-sensor)'
wait_for 'osect: sensor exited \(137\)' 20
wait_for 'osect: sensor started' 20
ok "a killed sensor is restarted"
run 'fw_setenv BOOT_B_LEFT 0'
next_boot
send reboot

# --- boot 3: B has no attempts left, U-Boot falls back to A --------------------------------
login A
ok "fell back to slot A once B had no attempts left"
next_boot
send 'poweroff'
for _ in $(seq 1 300); do
    kill -0 "$qpid" 2>/dev/null || break
    sleep 0.2
done
kill -0 "$qpid" 2>/dev/null && fail "qemu still running after poweroff"
qpid=
ok "powered off"

# --- host: read the data partition back ---------------------------------------------------
# MBR entry 4: start sector and sector count (little-endian 32-bit at 446+48+8).
read -r start count < <(od -An -tu4 -j $((446 + 48 + 8)) -N 8 "$W/disk.img")
dd if="$W/disk.img" of="$W/data.ext4" bs=512 skip="$start" count="$count" status=none
mkdir -p "$W/guest" "$W/cmp"
debugfs -R "rdump /osect/replay/spool $W/guest" "$W/data.ext4" >/dev/null 2>&1
debugfs -R "rdump /osect/spool $W/cmp" "$W/data.ext4" >/dev/null 2>&1
[ -n "$(ls "$W/guest/spool"/*.tar.zst 2>/dev/null)" ] || fail "no replayed bundles on the data partition"
host_bin=${HOST_BIN:-$ROOT/target/debug/osect-sensor}
[ -x "$host_bin" ] || cargo build -q -p osect-sensor
"$host_bin" replay "$ROOT/samples/sample.pcap" --seed 1 --bundles --out "$W/host" 2>/dev/null
unpack() { # unpack DIR: each bundle's members into DIR/<bundle>.d, wall-clock lines dropped
    local z
    for z in "$1"/*.tar.zst; do
        mkdir -p "$z.d"
        zstd -qdc "$z" | tar -x -C "$z.d"
        rm "$z"
    done
    find "$1" -name '*.log' -exec sed -i '/^#open\t/d; /^#close\t/d' {} +
}
mv "$W/cmp/spool" "$W/cmp/live"
unpack "$W/guest/spool"
unpack "$W/host/spool"
diff -r "$W/host/spool" "$W/guest/spool" >"$W/bundles.diff" || {
    head -20 "$W/bundles.diff" >&2
    fail "bundles replayed in the guest differ from the host's"
}
unpack "$W/cmp/live"
grep -rqP '\t127\.0\.0\.1\t8\t127\.0\.0\.1\t0\ticmp\t' "$W/cmp/live" ||
    fail "the live bundle has no conn.log row for the ping"
ok "guest bundles equal the host's replay; the live bundle has the ping"
log "diag as printed on the console:"
sed 's/^/    /' "$W/diag.txt" >&2
log "PASS: qemu A/B image test in $((SECONDS - t0)) s"

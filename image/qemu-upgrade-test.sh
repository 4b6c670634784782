#!/usr/bin/env bash
# Remote upgrade in qemu-system-aarch64: real RAUC bundles, signed at test time with keys made
# at test time (openssl), installed by `osect-sensor upgrade` through RAUC in the guest.
#
#  host    CA (the image's keyring) + signer, and a second CA + signer the image does not
#          trust; root file systems v2 (good) and v3 (its sensor crashes at start); bundles:
#          good (v2), foreign (v2, signed by the other CA), truncated (good, cut in half),
#          bad-health (v3). They reach the guest on a second, read-only disk.
#  boot 1  A. A foreign-signed and a truncated bundle are refused: boot order, slot A and
#          the spool untouched. Then the good bundle's install is cut by killing qemu while
#          RAUC writes slot B (power cut).
#  boot 2  A again (slot A byte-identical to the image, spool intact). Good bundle: A -> B.
#  boot 3  B on trial: sensor up and a bundle written -> marked good, update confirmed.
#  boot 4  B again (survives a reboot). The bad-health bundle goes to A.
#  boot 5-7 A on trial: its sensor never comes up, so it reboots unconfirmed each time
#          until U-Boot's counter for A runs out.
#  boot 8  U-Boot falls back to B on its own; the rollback is recorded; spool intact.
set -euo pipefail
LOG_TAG=upgrade-test
. "$(dirname "$0")/../cross/common.sh"

OUT=${IMAGE_OUT:-$ROOT/target/image/out}
WORK_ROOTFS=$ROOT/target/image/work/rootfs
W=$(mktemp -d "${TMPDIR:-/tmp}/osect-upgrade.XXXXXX")
UBOOT=/usr/lib/u-boot/qemu_arm64/u-boot.bin
BOOT_TIMEOUT=${BOOT_TIMEOUT:-180}
HEALTH_TIMEOUT=${HEALTH_TIMEOUT:-30}
qpid=
catpid=
cleanup() {
    [ -n "$qpid" ] && kill "$qpid" 2>/dev/null || true
    [ -n "$catpid" ] && kill "$catpid" 2>/dev/null || true
    exec 3>&- 2>/dev/null || true
    if [ "${KEEP:-0}" = 1 ]; then log "kept $W"; else rm -rf "$W"; fi
}
trap cleanup EXIT
t0=$SECONDS
fail() {
    log "FAIL: $*"
    log "last console lines:"
    tail -n 40 "$W/console.log" | sed 's/^/    /' >&2
    exit 1
}
ok() { log "ok ($((SECONDS - t0)) s): $*"; }

# --- keys, made now and never kept -----------------------------------------------------------
mkpki() { # mkpki DIR NAME: a CA and a signer it certifies
    mkdir -p "$1"
    openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=$2 CA" \
        -keyout "$1/ca.key.pem" -out "$1/ca.cert.pem" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=$2 signer" \
        -keyout "$1/signer.key.pem" -out "$1/signer.csr.pem" 2>/dev/null
    openssl x509 -req -days 30 -CA "$1/ca.cert.pem" -CAkey "$1/ca.key.pem" -CAcreateserial \
        -in "$1/signer.csr.pem" -out "$1/signer.cert.pem" 2>/dev/null
}
mkpki "$W/pki" "osect test"
mkpki "$W/foreign" "someone else"

# --- the image: keyring = the test CA; data partition seeded with the site config ----------
mkdir -p "$W/data/osect"
cat >"$W/data/osect/sensor.toml" <<TOML
[capture]
interface = "lo"
[output]
log_dir = "/data/osect/logs"
spool_dir = "/data/osect/spool"
sensor_log = "/data/osect/sensor.log"
interval_secs = 5
[flow]
icmp_inactivity_secs = 2
[upgrade]
health_timeout_secs = $HEALTH_TIMEOUT
health_checks = ["sensor", "bundle", "upload"]
TOML
OSECT_RAUC_KEYRING=$W/pki/ca.cert.pem "$ROOT/image/build.sh" --data "$W/data" >"$W/build.log" 2>&1 || {
    tail -20 "$W/build.log" >&2
    die "image build failed"
}
ok "image built (keyring: the test CA)"
cp --sparse=always "$OUT/disk.img" "$W/disk.img"
compatible=$(sed -n 's/^compatible=//p' "$WORK_ROOTFS/etc/rauc/system.conf")

# --- new root file systems and their bundles -------------------------------------------------
rootfs_variant() { # rootfs_variant NAME: copy of the image's root in $W/NAME, made to $W/NAME.ext4
    rm -rf "${W:?}/$1"
    cp -a "$WORK_ROOTFS" "$W/$1"
}
finish_rootfs() {
    mke2fs -q -F -t ext4 -L rootfs -d "$W/$1" "$W/$1.ext4" "${ROOTFS_SIZE:-96M}"
    rm -rf "${W:?}/$1"
}
rootfs_variant v2
echo "v2" >"$W/v2/etc/osect-build"
finish_rootfs v2
rootfs_variant v3
echo "v3" >"$W/v3/etc/osect-build"
mv "$W/v3/usr/bin/osect-sensor" "$W/v3/usr/bin/osect-sensor.real"
cat >"$W/v3/usr/bin/osect-sensor" <<'SH'
#!/bin/sh
# Test image v3: this version's sensor dies at start (everything else works).
if [ "$1" = run ]; then
    echo "osect-sensor: v3 cannot start" >&2
    exit 70
fi
exec /usr/bin/osect-sensor.real "$@"
SH
chmod 0755 "$W/v3/usr/bin/osect-sensor"
finish_rootfs v3

bundle() { # bundle ROOTFS VERSION PKI OUT
    local c=$W/content-$2
    rm -rf "$c" && mkdir -p "$c"
    ln "$W/$1.ext4" "$c/rootfs.ext4"
    cat >"$c/manifest.raucm" <<MF
[update]
compatible=$compatible
version=$2

[bundle]
format=verity

[image.rootfs]
filename=rootfs.ext4
MF
    rauc bundle --cert "$3/signer.cert.pem" --key "$3/signer.key.pem" "$c" "$4" >/dev/null 2>"$W/rauc-bundle.log" ||
        { cat "$W/rauc-bundle.log" >&2; die "rauc bundle $4 failed"; }
    rm -rf "$c"
}
mkdir -p "$W/updates"
bundle v2 2 "$W/pki" "$W/updates/good.raucb"
bundle v2 2-foreign "$W/foreign" "$W/updates/foreign.raucb"
bundle v3 3 "$W/pki" "$W/updates/bad-health.raucb"
size=$(stat -c %s "$W/updates/good.raucb")
head -c $((size / 2)) "$W/updates/good.raucb" >"$W/updates/truncated.raucb"
rauc info --keyring "$W/pki/ca.cert.pem" "$W/updates/good.raucb" >/dev/null 2>&1 ||
    die "the good bundle does not verify on the host"
if rauc info --keyring "$W/pki/ca.cert.pem" "$W/updates/foreign.raucb" >/dev/null 2>&1; then
    die "the foreign bundle verifies on the host"
fi
mb=$(($(du -sm "$W/updates" | cut -f1) + 16))
mke2fs -q -F -t ext4 -L updates -d "$W/updates" "$W/updates.ext4" "${mb}M"
ok "bundles signed: good $((size >> 20)) MiB, foreign, truncated, bad-health"

# --- qemu, serial console on FIFOs ------------------------------------------------------------
mkfifo "$W/console.in" "$W/console.out"
: >"$W/console.log"
start_qemu() {
    qemu-system-aarch64 -M virt -cpu cortex-a53 -smp 2 -m 512 -display none -monitor none \
        -nic none -bios "$UBOOT" \
        -drive if=none,id=d0,file="$W/disk.img",format=raw -device virtio-blk-pci,drive=d0 \
        -drive if=none,id=d1,file="$W/updates.ext4",format=raw,readonly=on \
        -device virtio-blk-pci,drive=d1 \
        -chardev pipe,id=c0,path="$W/console" -serial chardev:c0 >>"$W/qemu.log" 2>&1 &
    qpid=$!
    cat "$W/console.out" >>"$W/console.log" &
    catpid=$!
    exec 3>"$W/console.in"
}
. "$ROOT/image/console.sh"
next_boot() { mark=$(console_size); }
bmark=0
booted() { # booted SLOT
    bmark=$mark
    wait_for "osect: booting slot $1" "$BOOT_TIMEOUT"
}
since_boot() { # since_boot EXTENDED-REGEX SECONDS: wait_for over everything since the boot
    local m=$mark
    mark=$bmark
    wait_for "$1" "$2"
    mark=$m
}
login() { # login SLOT: a shell on the console, updates disk mounted, spool checked
    wait_for 'login:' "$BOOT_TIMEOUT"
    send root
    sleep 1
    run "cat /proc/cmdline"
    expect_out "rauc.slot=$1" "kernel command line"
    run 'mkdir -p /run/u && mount -o ro /dev/vdb /run/u && ls /run/u'
    expect_out 'good\.raucb' "updates disk"
    # Traffic for the sensor: one short ICMP connection every 2 s, so every interval has
    # records and its bundle comes without waiting for a lone ping's connection to time out.
    run '(while :; do ping -c 1 127.0.0.1; sleep 2; done) >/dev/null 2>&1 & true'
}
spool_intact() {
    run 'cd /data/osect/spool && sha256sum -c /data/spool.sha256; cd /'
    [ "$rc" = 0 ] || fail "spool data changed: $out"
}
superblock_sha() { # superblock_sha N: sha256 of the ext4 superblock (1 KiB at 1 KiB) of partition N
    local start
    start=$(od -An -tu4 -j $((446 + 16 * ($1 - 1) + 8)) -N 4 "$W/disk.img" | tr -d ' ')
    dd if="$W/disk.img" bs=1024 skip=$((start / 2 + 1)) count=1 status=none | sha256sum
}
slot_partition_sha() { # slot_partition_sha N: sha256 of MBR partition N of the disk
    local start count
    read -r start count < <(od -An -tu4 -j $((446 + 16 * ($1 - 1) + 8)) -N 8 "$W/disk.img")
    dd if="$W/disk.img" bs=512 skip="$start" count="$count" status=none | sha256sum | cut -d' ' -f1
}
ping_until_bundle() { # live traffic on lo until the sensor wrote a bundle since this boot
    run 'i=0; while [ $i -lt 40 ] && [ -z "$(find /data/osect/spool -name "*.tar.zst" -newer /run/osect-confirm 2>/dev/null)" ]; do sleep 1; i=$((i+1)); done; ls /data/osect/spool' 90
}
image_sha=$(sha256sum "$OUT/rootfs.ext4" | cut -d' ' -f1)
v2_sha=$(sha256sum "$W/v2.ext4" | cut -d' ' -f1)

# --- boot 1: A; refusals; power cut during the write --------------------------------------------
start_qemu
booted A
login A
since_boot "osect: slot A marked good" 60
ping_until_bundle
expect_out 'realtime-[0-9-]+:[0-9:]+\.tar\.zst' "a live bundle"
run 'cd /data/osect/spool && sha256sum realtime-*.tar.zst >/data/spool.sha256; cd /; wc -l </data/spool.sha256; rauc status'
expect_out 'Booted from: rootfs\.0 \(A\)' "rauc status in the guest"
ok "slot A up, RAUC service running, spool seeded"

for b in foreign truncated; do
    run "osect-sensor upgrade --no-reboot /run/u/$b.raucb; fw_printenv BOOT_ORDER; ls /data/osect/upgrade" 120
    expect_out 'osect-sensor: upgrade: .*not a valid bundle signed for this gateway' "$b bundle refused"
    expect_out 'BOOT_ORDER=A B' "$b: boot order"
    grep -q '^pending' <<<"$out" && fail "$b: an update was left pending"
    echo "$out" | grep 'not a valid bundle' | sed 's/^/    /' >&2
    ok "$b bundle refused before anything was written"
done
spool_intact

mark=$(console_size)
send 'osect-sensor upgrade /run/u/good.raucb'
wait_for 'Copying image to rootfs\.1' 180
# Cut the power once the first written blocks of slot B reached the disk (its superblock,
# at 1 KiB, is the new image's), before the copy is done.
b_before=$(superblock_sha 3)
until [ "$(superblock_sha 3)" != "$b_before" ]; do
    grep -q 'Copying image to rootfs\.1 done' < <(new_output) &&
        fail "the copy finished before any of it reached the disk"
    kill -0 "$qpid" 2>/dev/null || fail "qemu exited during the install"
    sleep 0.05
done
kill -9 "$qpid"
wait "$qpid" 2>/dev/null || true
qpid=
kill "$catpid" 2>/dev/null || true
wait "$catpid" 2>/dev/null || true
catpid=
exec 3>&-
[ "$(slot_partition_sha 2)" = "$image_sha" ] || fail "slot A changed during the cut install"
case $(slot_partition_sha 3) in
    "$image_sha") fail "slot B still holds the old image: the cut came before the write" ;;
    "$v2_sha") b_state="already complete" ;;
    *) b_state="partly written" ;;
esac
ok "power cut while RAUC wrote slot B (B $b_state); slot A is byte-identical to the image"

# --- boot 2: still A; the good update ----------------------------------------------------------
next_boot
start_qemu
booted A
login A
since_boot "osect: slot A marked good" 60
since_boot 'install of version 2 to slot B was interrupted' 10
spool_intact
ok "after the power cut slot A booted, the interrupted install was recorded, spool intact"

run 'cat /etc/osect-build 2>/dev/null; echo build-end'
grep -q '^v2' <<<"$out" && fail "slot A already has v2"
t_install=$SECONDS
next_boot
send 'osect-sensor upgrade /run/u/good.raucb'
wait_for 'osect: slot B written' 240
wait_for 'osect: rebooting' 30
ok "good bundle installed to slot B in $((SECONDS - t_install)) s"

# --- boot 3: B on trial -----------------------------------------------------------------------
booted B
login B
since_boot 'osect: slot B is on trial' 60
ping_until_bundle
since_boot 'osect: update to version 2 confirmed on slot B' $((HEALTH_TIMEOUT + 30))
run 'cat /etc/osect-build; fw_printenv BOOT_ORDER BOOT_B_LEFT; rauc status'
expect_out '^v2' "v2 running"
expect_out 'BOOT_ORDER=B A' "boot order"
expect_out 'BOOT_B_LEFT=3' "B marked good"
spool_intact
ok "slot B (v2) passed its health check and marked itself good ($((SECONDS - t_install)) s since the install began)"
next_boot
send reboot

# --- boot 4: B survives a reboot; the bad-health update to A ----------------------------------
booted B
login B
since_boot "osect: slot B marked good" 60
run 'cat /etc/osect-build'
expect_out '^v2' "v2 after a reboot"
spool_intact
ok "slot B survived a reboot"
t_bad=$SECONDS
next_boot
send 'osect-sensor upgrade /run/u/bad-health.raucb'
wait_for 'osect: slot A written' 240
wait_for 'osect: rebooting' 30
ok "v3 installed to slot A"

# --- boots 5-7: A on trial fails; U-Boot's counter runs out -----------------------------------
for attempt in 1 2 3; do
    booted A
    wait_for 'osect: slot A is on trial' $BOOT_TIMEOUT
    wait_for 'osect: slot A failed its health check' $((HEALTH_TIMEOUT + 30))
    wait_for 'osect: rebooting unconfirmed' 30
    ok "slot A (v3) attempt $attempt: health check failed, rebooting unconfirmed"
    next_boot
done

# --- boot 8: back on B by itself --------------------------------------------------------------
booted B
login B
since_boot 'slot A \(version 3\) did not prove itself and was given up; rolled back' 60
since_boot "osect: slot B marked good" 60
run 'cat /etc/osect-build; tail -n 20 /data/osect/upgrade/upgrade-history.log'
expect_out '^v2' "v2 after the rollback"
for line in 'refused /run/u/foreign\.raucb' 'refused /run/u/truncated\.raucb' \
    'install of version 2 to slot B was interrupted' 'confirmed version 2 on slot B' \
    'slot A failed its health check' 'slot A \(version 3\) did not prove itself'; do
    expect_out "$line" "upgrade history"
done
echo "$out" | grep -E '^[0-9]{4}-' | sed 's/^/    /' >&2
spool_intact
ok "rolled back to slot B (v2) on its own in $((SECONDS - t_bad)) s"
next_boot
send poweroff
for _ in $(seq 1 300); do
    kill -0 "$qpid" 2>/dev/null || break
    sleep 0.2
done
kill -0 "$qpid" 2>/dev/null && fail "qemu still running after poweroff"
qpid=
[ "$(slot_partition_sha 3)" = "$v2_sha" ] || fail "slot B is not the v2 image byte for byte"
ok "slot B holds the signed v2 image byte for byte"
log "PASS: qemu upgrade test in $((SECONDS - t0)) s"

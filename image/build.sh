#!/usr/bin/env bash
# Builds the A/B disk image for qemu's aarch64 "virt" machine from Debian arm64 packages and
# the cross-built sensor, with the BR2_EXTERNAL tree's board files (overlay, post-build and
# post-image scripts, boot.cmd, genimage.cfg): the same layout the Buildroot build makes.
#
#   image/build.sh [--data DIR]   -> target/image/out/disk.img
#
# --data DIR: contents for the data partition (the qemu test seeds a site config and a capture).
# Not Buildroot: kernel (Debian cloud-arm64, virtio as modules, hence an initramfs), BusyBox
# (Debian's static build) and glibc for fw_setenv and setpriv come from Debian.
set -euo pipefail
LOG_TAG=image
. "$(dirname "$0")/../cross/common.sh"

BOARD=$ROOT/buildroot/board/osect/qemu_aarch64_virt
COMMON=$ROOT/buildroot/board/osect/common
OUT=${IMAGE_OUT:-$ROOT/target/image/out}
WORK=$ROOT/target/image/work
DEBS=$ROOT/target/image/debs
SENSOR=$ROOT/target/aarch64-unknown-linux-musl/$PROFILE/osect-sensor
ROOTFS_SIZE=${ROOTFS_SIZE:-96M}
data_src=
while [ $# -gt 0 ]; do
    case $1 in
        --data) data_src=$2; shift 2 ;;
        *) die "unknown argument $1" ;;
    esac
done

[ -x "$SENSOR" ] || die "$SENSOR missing: run cross/build.sh aarch64-unknown-linux-musl"
start=$SECONDS
rm -rf "$WORK" && mkdir -p "$WORK" "$OUT"

# Debian arm64 parts, from the private index (the machine's dpkg stays amd64-only).
apt_private_update
kpkg=$(apt_private_cache depends linux-image-cloud-arm64 | awk '/Depends: linux-image-/{print $2; exit}')
[ -n "$kpkg" ] || die "cannot resolve linux-image-cloud-arm64"
mapfile -t debs < <(apt_private_download "$DEBS" "$kpkg" busybox-static libubootenv-tool \
    libubootenv0.1 libc6 zlib1g util-linux libcap-ng0 p0f)
for d in "${debs[@]}"; do
    n=$(basename "$d")
    mkdir -p "$WORK/deb/${n%%_*}"
    dpkg-deb -x "$d" "$WORK/deb/${n%%_*}"
done
kver=${kpkg#linux-image-}
kdir=$WORK/deb/$kpkg

# Root file system.
R=$WORK/rootfs
mkdir -p "$R"/{bin,sbin,usr/bin,usr/sbin,lib,etc,proc,sys,dev,tmp,run,var/log,root,boot,data,uboot}
# As in Buildroot's skeleton: programs that default to /var/run (GLib's D-Bus client) find /run.
ln -s ../run "$R/var/run"
install -m 0755 "$WORK/deb/busybox-static/bin/busybox" "$R/bin/busybox"
while read -r applet; do
    [ -e "$R/$applet" ] || ln -s /bin/busybox "$R/$applet"
done < <(qemu-aarch64-static "$R/bin/busybox" --list-full)
# glibc, only for Debian's fw_setenv and setpriv (the sensor is static).
mkdir -p "$R/lib/aarch64-linux-gnu"
for f in ld-linux-aarch64.so.1 libc.so.6; do
    cp -a "$WORK/deb/libc6/lib/aarch64-linux-gnu/$f" "$R/lib/aarch64-linux-gnu/"
done
ln -sf aarch64-linux-gnu/ld-linux-aarch64.so.1 "$R/lib/ld-linux-aarch64.so.1"
cp -a "$WORK"/deb/zlib1g/lib/aarch64-linux-gnu/libz.so.1* "$R/lib/aarch64-linux-gnu/"
cp -a "$WORK"/deb/libubootenv0.1/usr/lib/aarch64-linux-gnu/libubootenv.so.0* "$R/lib/aarch64-linux-gnu/"
cp -a "$WORK"/deb/libcap-ng0/lib/aarch64-linux-gnu/libcap-ng.so.0* "$R/lib/aarch64-linux-gnu/" 2>/dev/null ||
    cp -a "$WORK"/deb/libcap-ng0/usr/lib/aarch64-linux-gnu/libcap-ng.so.0* "$R/lib/aarch64-linux-gnu/"
install -m 0755 "$WORK/deb/libubootenv-tool/usr/bin/fw_printenv" "$R/usr/bin/fw_printenv"
ln -sf fw_printenv "$R/usr/bin/fw_setenv"
# util-linux's setpriv (uid switch, capability sets); BusyBox's applet of that name has none
# of the options the service needs, so its link goes.
find "$R" -name setpriv -type l -delete
install -m 0755 "$WORK/deb/util-linux/usr/bin/setpriv" "$R/usr/bin/setpriv"
install -m 0755 "$SENSOR" "$R/usr/bin/osect-sensor"

# RAUC: Debian's build, which installs through its D-Bus service (Buildroot's is built without
# D-Bus and installs in-process), so dbus-daemon comes along; S05rauc starts both. Only the
# shared libraries the two programs need (their ELF NEEDED closure) are copied.
if [ "${IMAGE_RAUC:-1}" = 1 ]; then
    RAUC_LIB_DEBS="libjson-glib-1.0-0 libglib2.0-0 libcurl3-gnutls libssl3 libfdisk1 libdbus-1-3
        libsystemd0 libexpat1 libselinux1 libaudit1 libapparmor1 libffi8 libpcre2-8-0 libmount1
        libblkid1 libgnutls30 libnghttp2-14 libidn2-0 librtmp1 libssh2-1 libpsl5 libgssapi-krb5-2
        libldap-2.5-0 libzstd1 libbrotli1 libp11-kit0 libunistring2 libtasn1-6 libnettle8
        libhogweed6 libgmp10 libkrb5-3 libk5crypto3 libcom-err2 libkrb5support0 libkeyutils1
        libsasl2-2 libcap2 libgcrypt20 libgpg-error0 liblz4-1 liblzma5 libuuid1 libgcc-s1"
    X=$WORK/rauc-x
    mkdir -p "$X"
    # shellcheck disable=SC2086
    for d in $(apt_private_download "$DEBS" rauc rauc-service dbus-daemon dbus-system-bus-common \
        libc6 zlib1g libcap-ng0 $RAUC_LIB_DEBS); do
        dpkg-deb -x "$d" "$X"
    done
    install -m 0755 "$X/usr/bin/rauc" "$R/usr/bin/rauc"
    install -m 0755 "$X/usr/bin/dbus-daemon" "$R/usr/bin/dbus-daemon"
    mkdir -p "$R/usr/share/dbus-1/system.d" "$R/etc/dbus-1/system.d"
    cp "$X/usr/share/dbus-1/system.conf" "$R/usr/share/dbus-1/system.conf"
    cp "$X/usr/share/dbus-1/system.d/de.pengutronix.rauc.conf" "$R/usr/share/dbus-1/system.d/"
    declare -A have=()
    todo=("$R/usr/bin/rauc" "$R/usr/bin/dbus-daemon")
    while [ ${#todo[@]} -gt 0 ]; do
        f=${todo[0]}
        todo=("${todo[@]:1}")
        for n in $(readelf -d "$f" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
            [ -n "${have[$n]:-}" ] && continue
            have[$n]=1
            src=
            for dir in lib/aarch64-linux-gnu usr/lib/aarch64-linux-gnu; do
                [ -e "$X/$dir/$n" ] && src=$X/$dir/$n && break
            done
            [ -n "$src" ] || die "RAUC needs $n: not in the unpacked packages"
            cp -L "$src" "$R/lib/aarch64-linux-gnu/$n"
            todo+=("$src")
        done
    done
    echo "messagebus:x:100:101::/nonexistent:/bin/false" >"$WORK/passwd.extra"
    echo "messagebus:x:101:" >"$WORK/group.extra"
    # Kernel side of RAUC's verity bundles: loop, squashfs, dm-verity (and what it needs).
    rauc_kmods="kernel/drivers/block/loop.ko kernel/fs/squashfs/squashfs.ko
        kernel/drivers/dax/dax.ko kernel/drivers/md/dm-mod.ko kernel/drivers/md/dm-bufio.ko
        kernel/lib/reed_solomon/reed_solomon.ko kernel/drivers/md/dm-verity.ko"
fi

# Accounts, as Buildroot's skeleton and users table would make them. root has no password:
# a development image for the serial console.
cat >"$R/etc/passwd" <<PW
root:x:0:0:root:/root:/bin/sh
osect:x:1000:1000:osect-sensor capture service:/data/osect:/bin/false
PW
printf 'root::0::::::\nosect:*:0::::::\n' >"$R/etc/shadow"
chmod 0600 "$R/etc/shadow"
printf 'root:x:0:\ntty:x:5:\nosect:x:1000:\n' >"$R/etc/group"
cat "$WORK/passwd.extra" >>"$R/etc/passwd" 2>/dev/null || true
cat "$WORK/group.extra" >>"$R/etc/group" 2>/dev/null || true
echo "/bin/sh" >"$R/etc/shells"

cp -a "$COMMON/rootfs-overlay/." "$R/"
cp -a "$BOARD/rootfs-overlay/." "$R/"
rm -f "$R/data/.keep" "$R/uboot/.keep"
# vfat for the boot partition (slot state) is a module in Debian's kernel.
kmods="kernel/fs/fat/fat.ko kernel/fs/fat/vfat.ko kernel/fs/nls/nls_cp437.ko kernel/fs/nls/nls_ascii.ko
    ${rauc_kmods:-}"
for m in $kmods; do
    install -D -m 0644 "$kdir/lib/modules/$kver/$m" "$R/lib/modules/$kver/$m"
done
for m in $kmods; do echo "/lib/modules/$kver/$m"; done >"$R/etc/modules"
BASE_DIR='' OSECT_P0F_FP="$WORK/deb/p0f/etc/p0f/p0f.fp" sh "$COMMON/post-build.sh" "$R" "$BOARD"

# Initramfs: BusyBox, the virtio modules, the init that mounts the slot.
I=$WORK/initramfs
mkdir -p "$I"/{bin,proc,sys,dev,newroot}
cp "$R/bin/busybox" "$I/bin/"
for a in sh mount umount insmod sleep mkdir switch_root cat poweroff; do ln -s busybox "$I/bin/$a"; done
install -m 0755 "$ROOT/image/initramfs-init" "$I/init"
: >"$I/modules.order"
for m in drivers/virtio/virtio_ring.ko drivers/virtio/virtio.ko \
    drivers/virtio/virtio_pci_legacy_dev.ko drivers/virtio/virtio_pci_modern_dev.ko \
    drivers/virtio/virtio_pci.ko drivers/virtio/virtio_mmio.ko drivers/block/virtio_blk.ko; do
    install -D -m 0644 "$kdir/lib/modules/$kver/kernel/$m" "$I/kernel/$m"
    echo "kernel/$m" >>"$I/modules.order"
done
(cd "$I" && find . | cpio -o -H newc --quiet | gzip -9) >"$R/boot/initrd.img"
cp "$kdir/boot/vmlinuz-$kver" "$R/boot/Image"

# Images and the disk: the board's own post-image script and genimage layout.
rm -f "$OUT"/{rootfs.ext4,data.ext4,boot.vfat,disk.img}
mke2fs -q -F -t ext4 -L rootfs -d "$R" "$OUT/rootfs.ext4" "$ROOTFS_SIZE"
if [ -n "$data_src" ]; then
    mke2fs -q -F -t ext4 -L data -d "$data_src" "$OUT/data.ext4" 128M
fi
sh "$COMMON/post-image.sh" "$OUT" "$BOARD"
log "image: $OUT/disk.img ($(du -h --apparent-size "$OUT/disk.img" | cut -f1), kernel $kver, $((SECONDS - start)) s)"

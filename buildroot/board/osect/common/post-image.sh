#!/bin/sh
# Buildroot post-image script (also run by image/build.sh):
#   post-image.sh BINARIES_DIR BOARD_DIR
# Expects rootfs.ext4 in BINARIES_DIR; makes boot.scr, the initial slot state uboot.env, an
# empty data partition (unless one is there already) and lays out disk.img with genimage.
set -eu
BINARIES_DIR=$1
BOARD_DIR=$2
. "$BOARD_DIR/board.env"
DATA_SIZE=${DATA_SIZE:-128M}

sed -e "s|@CONSOLE@|$CONSOLE|g" -e "s|@ROOT_PREFIX@|$ROOT_PREFIX|g" -e "s|@FDT@|$FDT|g" \
    "$(dirname "$0")/boot.cmd.in" >"$BINARIES_DIR/boot.cmd"
mkimage -A "$MKIMAGE_ARCH" -O linux -T script -C none -n "osect A/B boot" \
    -d "$BINARIES_DIR/boot.cmd" "$BINARIES_DIR/boot.scr" >/dev/null
mkenvimage -s 0x4000 -o "$BINARIES_DIR/uboot.env" "$BOARD_DIR/uboot-env.txt"
# Raspberry Pi firmware settings go to the boot partition as config.txt.
if [ -f "$BOARD_DIR/config.txt" ]; then
    cp "$BOARD_DIR/config.txt" "$BINARIES_DIR/rpi-config.txt"
fi
if [ ! -f "$BINARIES_DIR/data.ext4" ]; then
    mke2fs -q -F -t ext4 -L data "$BINARIES_DIR/data.ext4" "$DATA_SIZE"
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/root" "$tmp/work"
genimage --rootpath "$tmp/root" --tmppath "$tmp/work" --inputpath "$BINARIES_DIR" \
    --outputpath "$BINARIES_DIR" --config "$BOARD_DIR/genimage.cfg"

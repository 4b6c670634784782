#!/usr/bin/env bash
# Cross-builds osect-sensor for the ARM gateways: `cross/build.sh [TARGET...]`.
#
#   aarch64-unknown-linux-musl     fully static (musl), linked by rust-lld; C parts (libpcap,
#                                  zstd) compiled by Debian's aarch64 gcc against Debian's musl
#                                  headers (musl-dev:arm64, unpacked privately)
#   armv7-unknown-linux-gnueabihf  Debian's arm-linux-gnueabihf gcc; glibc dynamic, libpcap static
#
# Both link Debian's libpcap source built for the target as a static library, so the binaries
# need nothing from the gateway but a kernel (and glibc for armv7). Output:
#   target/<TARGET>/release-cross/osect-sensor
set -euo pipefail
. "$(dirname "$0")/common.sh"

targets=${*:-$CROSS_TARGETS_DEFAULT}

# Debian's gcc for aarch64 with Debian's musl headers and crt files instead of glibc's: a
# specs file (as musl-gcc does) pointed at the privately unpacked musl-dev:arm64.
musl_aarch64_toolchain() {
    local dir=$CROSS_DIR/musl-aarch64
    [ -x "$dir/bin/aarch64-linux-musl-gcc" ] && return
    log "unpacking Debian's musl-dev:arm64"
    local deb
    deb=$(apt_private_download "$CROSS_DIR/debs" musl-dev | tail -1)
    rm -rf "$dir" && mkdir -p "$dir/bin"
    dpkg-deb -x "$deb" "$dir/sysroot"
    # Kernel UAPI headers (linux/, asm/) from Debian's aarch64 cross toolchain, as musl-tools
    # does for native builds; musl itself ships none.
    local inc=$dir/sysroot/usr/include/aarch64-linux-musl h
    for h in linux asm asm-generic; do
        ln -sfn "/usr/aarch64-linux-gnu/include/$h" "$inc/$h"
    done
    sed "s|/usr/|$dir/sysroot/usr/|g" "$dir/sysroot/usr/lib/aarch64-linux-musl/musl-gcc.specs" \
        >"$dir/musl-gcc.specs"
    cat >"$dir/bin/aarch64-linux-musl-gcc" <<WRAP
#!/bin/sh
exec aarch64-linux-gnu-gcc "\$@" -specs "$dir/musl-gcc.specs"
WRAP
    chmod +x "$dir/bin/aarch64-linux-musl-gcc"
}

# libpcap.a for one target, built once: the capture features the sensor uses (Linux
# PF_PACKET, BPF compiler, savefiles) and none of the optional back-ends.
build_libpcap() {
    local target=$1 prefix=$CROSS_DIR/$1/libpcap
    if [ -f "$prefix/lib/libpcap.a" ] && [ "$(cat "$prefix/version" 2>/dev/null)" = "$LIBPCAP_DEB" ]; then
        return
    fi
    local src build cc
    src=$(fetch_libpcap_source)
    cc=$(target_cc "$target")
    build=$CROSS_DIR/$target/libpcap-build
    rm -rf "$build" "$prefix" && mkdir -p "$build"
    log "libpcap $LIBPCAP_DEB for $target"
    if ! (
        cd "$build" &&
            "$src/configure" -q --host="$(target_host_triplet "$target")" --prefix="$prefix" \
                CC="$cc" AR="$(target_binutils_prefix "$target")ar" CFLAGS="-Os -fPIC" \
                --with-pcap=linux --disable-shared --without-libnl --disable-dbus \
                --disable-rdma --disable-bluetooth --disable-usb --disable-netmap \
                --disable-remote --without-dpdk &&
            make -s -j"$(nproc)" libpcap.a &&
            mkdir -p "$prefix/lib" "$prefix/include" &&
            cp libpcap.a "$prefix/lib/" &&
            cp -r "$src/pcap" "$src/pcap.h" "$prefix/include/"
    ) >"$CROSS_DIR/$target/libpcap-build.log" 2>&1; then
        tail -30 "$CROSS_DIR/$target/libpcap-build.log" >&2
        die "libpcap build for $target failed (log: $CROSS_DIR/$target/libpcap-build.log)"
    fi
    echo "$LIBPCAP_DEB" >"$prefix/version"
}

build_sensor() {
    local target=$1 t_env cc bp
    t_env=$(echo "$target" | tr 'a-z-' 'A-Z_')
    cc=$(target_cc "$target")
    bp=$(target_binutils_prefix "$target")
    local -a env=(
        "CC_${target//-/_}=$cc"
        "AR_${target//-/_}=${bp}ar"
        # The pcap crate's build script would otherwise dlopen the *host* libpcap to learn
        # the version and enable APIs the target library may not have.
        "LIBPCAP_VER=$LIBPCAP_VER"
        "LIBPCAP_LIBDIR=$CROSS_DIR/$target/libpcap/lib"
    )
    case $target in
        aarch64-unknown-linux-musl)
            # rust-lld with Rust's self-contained musl start files and libc: no gcc link step.
            env+=("CARGO_TARGET_${t_env}_LINKER=rust-lld")
            ;;
        armv7-unknown-linux-gnueabihf)
            env+=("CARGO_TARGET_${t_env}_LINKER=arm-linux-gnueabihf-gcc")
            ;;
    esac
    log "osect-sensor for $target (profile $PROFILE)"
    local start=$SECONDS
    env "${env[@]}" PATH="$(rustc --print sysroot)/lib/rustlib/x86_64-unknown-linux-gnu/bin:$PATH" \
        cargo build -q --locked -p osect-sensor --profile "$PROFILE" --target "$target"
    local bin=$ROOT/target/$target/$PROFILE/osect-sensor
    log "$bin: $(stat -c %s "$bin") bytes, $((SECONDS - start)) s"
}

for t in $targets; do
    command -v "$(target_binutils_prefix "$t")gcc" >/dev/null ||
        die "$(target_binutils_prefix "$t")gcc missing: run 'make cross' (installs the cross compilers)"
    rustup target list --installed 2>/dev/null | grep -qx "$t" || rustup target add "$t"
    [ "$t" = aarch64-unknown-linux-musl ] && musl_aarch64_toolchain
    build_libpcap "$t"
    build_sensor "$t"
done

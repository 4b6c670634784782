# Shared by the cross/ scripts: where things go and the Debian sources they start from.
# Sourced, not run.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CROSS_DIR=${CROSS_DIR:-$ROOT/target/cross}
# libpcap is Debian bookworm's (the version the host build links against), so the ARM builds
# and the host build read captures with the same code.
LIBPCAP_VER=${LIBPCAP_VER:-1.10.3}
LIBPCAP_DEB=${LIBPCAP_DEB:-1.10.3-1}
PROFILE=${PROFILE:-release-cross}
CROSS_TARGETS_DEFAULT="aarch64-unknown-linux-musl armv7-unknown-linux-gnueabihf"

log() { printf "[%s] %s\n" "${LOG_TAG:-cross}" "$*" >&2; }
die() { printf "[%s] error: %s\n" "${LOG_TAG:-cross}" "$*" >&2; exit 1; }

# A private apt state: Debian's source index and its arm64 binary index, so fetching a source
# package or an arm64 .deb changes nothing in the machine's own apt/dpkg configuration (no
# foreign dpkg architecture, no deb-src line). Shared with image/.
APT_DIR=${APT_DIR:-$ROOT/target/apt-arm64}
apt_private() {
    local d=$APT_DIR
    if [ ! -s "$d/sources.list" ]; then
        mkdir -p "$d/lists/partial" "$d/archives/partial"
        {
            echo "deb-src http://deb.debian.org/debian bookworm main"
            echo "deb [arch=arm64] http://deb.debian.org/debian bookworm main"
            echo "deb [arch=arm64] http://deb.debian.org/debian bookworm-updates main"
            echo "deb [arch=arm64] http://deb.debian.org/debian-security bookworm-security main"
        } >"$d/sources.list"
    fi
    apt-get -q -o Dir::Etc::SourceList="$d/sources.list" -o Dir::Etc::SourceParts=- \
        -o Dir::State::Lists="$d/lists" -o Dir::Cache::Archives="$d/archives" \
        -o Dir::State::status=/dev/null -o APT::Architecture=arm64 \
        -o APT::Architectures::=arm64 -o APT::Sandbox::User=root "$@"
}
apt_private_cache() {
    local d=$APT_DIR
    apt-cache -o Dir::Etc::SourceList="$d/sources.list" -o Dir::Etc::SourceParts=- \
        -o Dir::State::Lists="$d/lists" -o Dir::State::status=/dev/null \
        -o APT::Architecture=arm64 -o APT::Architectures::=arm64 "$@"
}
# Refreshes the private index at most once a day.
apt_private_update() {
    local stamp=$APT_DIR/updated
    if [ -z "$(find "$stamp" -mmin -1440 2>/dev/null)" ]; then
        apt_private update -qq >&2 || die "apt-get update (private arm64/deb-src index) failed"
        mkdir -p "$APT_DIR" && touch "$stamp"
    fi
}
# Downloads arm64 .debs (newest bookworm versions) into $1 and prints their paths.
apt_private_download() {
    local dir=$1
    shift
    apt_private_update
    mkdir -p "$dir"
    (cd "$dir" && apt_private download "$@" >&2) || die "apt-get download $* failed"
    local p f found
    for p in "$@"; do
        found=
        for f in "$dir/${p%%=*}"_*_arm64.deb "$dir/${p%%=*}"_*_all.deb; do
            [ -e "$f" ] && found=$f
        done
        [ -n "$found" ] || die "no .deb for $p in $dir"
        echo "$found"
    done
}

# Debian's libpcap source with Debian's patches applied, unpacked once under $CROSS_DIR/src.
fetch_libpcap_source() {
    local src=$CROSS_DIR/src/libpcap-$LIBPCAP_VER
    if [ -f "$src/configure" ]; then
        echo "$src"
        return
    fi
    mkdir -p "$CROSS_DIR/src"
    (
        cd "$CROSS_DIR/src"
        apt_private_update
        apt_private source --download-only "libpcap=$LIBPCAP_DEB" >&2
        rm -rf "$src"
        dpkg-source --no-check -x "libpcap_$LIBPCAP_DEB.dsc" "$src" >&2
    ) || die "cannot fetch Debian's libpcap $LIBPCAP_DEB source"
    echo "$src"
}

# Rust target triple -> the pieces of the C toolchain that builds for it.
target_cc() {
    case $1 in
        aarch64-unknown-linux-musl) echo "$CROSS_DIR/musl-aarch64/bin/aarch64-linux-musl-gcc" ;;
        armv7-unknown-linux-gnueabihf) echo "arm-linux-gnueabihf-gcc" ;;
        *) die "unsupported target $1" ;;
    esac
}
target_host_triplet() {
    case $1 in
        aarch64-unknown-linux-musl) echo "aarch64-linux-musl" ;;
        armv7-unknown-linux-gnueabihf) echo "arm-linux-gnueabihf" ;;
    esac
}
target_binutils_prefix() {
    case $1 in
        aarch64-unknown-linux-musl) echo "aarch64-linux-gnu-" ;;
        armv7-unknown-linux-gnueabihf) echo "arm-linux-gnueabihf-" ;;
    esac
}
# How qemu-user runs a binary of the target (armv7 links glibc dynamically).
target_qemu() {
    case $1 in
        aarch64-unknown-linux-musl) echo "qemu-aarch64-static" ;;
        armv7-unknown-linux-gnueabihf) echo "qemu-arm-static -L /usr/arm-linux-gnueabihf" ;;
    esac
}

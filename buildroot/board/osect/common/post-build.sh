#!/bin/sh
# Buildroot post-build script (also run by image/build.sh on its own root file system):
#   post-build.sh TARGET_DIR BOARD_DIR
# Finishes the root file system for the board: the serial console's getty, the p0f fingerprint
# database and the rules folder, and RAUC's keyring.
set -eu
TARGET_DIR=$1
BOARD_DIR=$2
. "$BOARD_DIR/board.env"

sed -i "s/@CONSOLE@/$CONSOLE/g" "$TARGET_DIR/etc/inittab"

# p0f's fingerprint database is third-party data: taken at build time from the build host's
# p0f package (Debian: /etc/p0f/p0f.fp) or from $OSECT_P0F_FP, never kept in this tree.
fp=${OSECT_P0F_FP:-/etc/p0f/p0f.fp}
mkdir -p "$TARGET_DIR/usr/share/osect/rules"
if [ -f "$fp" ]; then
    install -m 0644 "$fp" "$TARGET_DIR/usr/share/osect/p0f.fp"
    # The sensor's default p0f.fp_file is p0f's own path: a config without the key (the
    # shipped one, `replay` without --config) finds the database there too.
    mkdir -p "$TARGET_DIR/etc/p0f"
    ln -sfn /usr/share/osect/p0f.fp "$TARGET_DIR/etc/p0f/p0f.fp"
else
    echo "post-build: warning: no p0f.fp ($fp); the image ships without OS fingerprints" >&2
fi

# RAUC verifies bundles against this keyring. Release builds pass the product CA in
# $OSECT_RAUC_KEYRING; otherwise a development CA is made once per output folder.
if [ -f "$TARGET_DIR/etc/rauc/system.conf" ]; then
    keyring=${OSECT_RAUC_KEYRING:-}
    if [ -z "$keyring" ] && [ -n "${BASE_DIR:-}" ] && command -v openssl >/dev/null; then
        keys=$BASE_DIR/osect-dev-keys
        if [ ! -f "$keys/ca.cert.pem" ]; then
            mkdir -p "$keys"
            openssl req -x509 -newkey rsa:3072 -nodes -days 3650 -subj "/CN=osect development CA" \
                -keyout "$keys/ca.key.pem" -out "$keys/ca.cert.pem" 2>/dev/null
            openssl req -newkey rsa:3072 -nodes -subj "/CN=osect development signer" \
                -keyout "$keys/signer.key.pem" -out "$keys/signer.csr.pem" 2>/dev/null
            openssl x509 -req -days 3650 -CA "$keys/ca.cert.pem" -CAkey "$keys/ca.key.pem" \
                -CAcreateserial -in "$keys/signer.csr.pem" -out "$keys/signer.cert.pem" 2>/dev/null
        fi
        keyring=$keys/ca.cert.pem
    fi
    if [ -n "$keyring" ]; then
        install -m 0644 "$keyring" "$TARGET_DIR/etc/rauc/keyring.pem"
    fi
fi

# osect-sensor — the commands that matter: `make run` and `make test`.
# Works on a fresh Debian 12 machine as root: `deps` installs what is missing.

SHELL := /bin/bash
CARGO ?= cargo
OUT ?= out
SAMPLE ?= samples/sample.pcap
APT_PACKAGES := libpcap-dev tcpreplay iproute2 zstd time nginx tshark p0f rauc squashfs-tools

.PHONY: all deps build release run test unit conformance lint fmt bench fuzz clean \
	deps-cross cross cross-build cross-smoke deps-image image qemu-test qemu-upgrade-test

all: build

# Debian packages and Rust components; each is installed only when missing.
deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi
	@command -v $(CARGO) >/dev/null || { echo "cargo not found: install Rust (rustup) first"; exit 1; }
	@if command -v rustup >/dev/null; then \
	  rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy; \
	  rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt; \
	fi

build: deps
	$(CARGO) build --workspace

release: deps
	$(CARGO) build --release -p osect-sensor

# Replays the bundled sample capture as live mode would: per-minute interval folders with
# every log, and the minute bundles, under $(OUT)/.
run: release
	@rm -rf $(OUT) && mkdir -p $(OUT)
	./target/release/osect-sensor replay $(SAMPLE) --bundles --out $(OUT)
	./target/release/osect-sensor replay $(SAMPLE) --out $(OUT)/whole
	@echo
	@echo "interval folders (one per minute of packet time):"; ls -1 $(OUT)/logs
	@echo "minute bundles (ready for upload):"; ls -1 $(OUT)/spool/*.tar.zst
	@echo "the whole capture as one set of logs: $(OUT)/whole/conn.log"
	@echo "sensor log: $(OUT)/sensor.log"

lint: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

# Unit tests, the Zeek conformance suite, bad-input and live (netns) tests.
test: deps lint
	$(CARGO) test --workspace -- --test-threads=2

bench: deps
	bash bench/run.sh

# Coverage-guided fuzzing of every parser target in fuzz/ (libFuzzer + AddressSanitizer).
# cargo-fuzz wants nightly; RUSTC_BOOTSTRAP lets the stable toolchain's sanitizer runtimes do.
FUZZ_SECS ?= 60
fuzz: deps
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	set -o pipefail; cd fuzz && for t in $$(RUSTC_BOOTSTRAP=1 $(CARGO) fuzz list); do \
	  echo "== fuzz $$t ($(FUZZ_SECS) s)"; \
	  RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run $$t -- -max_total_time=$(FUZZ_SECS) 2>&1 | tail -2 || exit 1; \
	done

clean:
	$(CARGO) clean
	rm -rf $(OUT) bench-out

# --- ARM firmware: cross builds and the A/B image tested in qemu (cross/, image/, buildroot/) ---
# Their packages are installed only by these targets. The arm64 kernel, BusyBox and friends
# for the image come from a private apt index under target/ (no foreign dpkg architecture).
CROSS_APT_PACKAGES := gcc-aarch64-linux-gnu linux-libc-dev-arm64-cross gcc-arm-linux-gnueabihf \
	libc6-dev-armhf-cross qemu-user-static flex bison dpkg-dev zstd
IMAGE_APT_PACKAGES := qemu-system-arm u-boot-qemu u-boot-tools genimage mtools dosfstools \
	e2fsprogs cpio binutils rauc squashfs-tools openssl
CROSS_TARGETS := aarch64-unknown-linux-musl armv7-unknown-linux-gnueabihf

define apt_install
	@missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq \
	    --no-install-recommends $$missing >/dev/null; \
	fi
endef

deps-cross: deps
	$(call apt_install,$(CROSS_APT_PACKAGES))
	@for t in $(CROSS_TARGETS); do \
	  rustup target list --installed | grep -qx $$t || rustup target add $$t; done

# Both ARM binaries (sizes printed), then the qemu-user comparison with the host binary.
cross: cross-build cross-smoke

cross-build: deps-cross
	bash cross/build.sh $(CROSS_TARGETS)
	@ls -l $(foreach t,$(CROSS_TARGETS),target/$(t)/release-cross/osect-sensor)

cross-smoke: deps-cross
	bash cross/smoke.sh $(CROSS_TARGETS)

deps-image: deps-cross
	$(call apt_install,$(IMAGE_APT_PACKAGES))

# The A/B disk image for qemu's aarch64 virt machine: target/image/out/disk.img.
image: deps-image
	bash cross/build.sh aarch64-unknown-linux-musl
	bash image/build.sh

# Boots the image in qemu-system-aarch64 and tests it over the serial console (~1-2 min).
qemu-test: deps-image
	bash cross/build.sh aarch64-unknown-linux-musl
	$(CARGO) build -q -p osect-sensor
	bash image/qemu-test.sh

# Remote upgrade in qemu: RAUC bundles signed at test time; refusals, a power cut mid-write,
# A->B, and the automatic rollback of an update that fails its health check (~5 min).
qemu-upgrade-test: deps-image
	bash cross/build.sh aarch64-unknown-linux-musl
	bash image/qemu-upgrade-test.sh

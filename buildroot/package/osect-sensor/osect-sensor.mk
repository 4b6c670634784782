################################################################################
#
# osect-sensor
#
################################################################################

# Built from this checkout (the tree's parent folder), not a release tarball: the version is
# the workspace's, dependencies are vendored by Buildroot's cargo download post-process from
# the committed Cargo.lock.
OSECT_SENSOR_VERSION = 0.1.0
OSECT_SENSOR_SITE = $(BR2_EXTERNAL_OSECT_PATH)/..
OSECT_SENSOR_SITE_METHOD = local
OSECT_SENSOR_LICENSE = MIT or Apache-2.0
OSECT_SENSOR_DEPENDENCIES = libpcap
# The checkout's build output is not source.
OSECT_SENSOR_OVERRIDE_SRCDIR_RSYNC_EXCLUSIONS = \
	--exclude target --exclude out --exclude bench-out --exclude fuzz/target

# Buildroot vendors a cargo package's crates while post-processing its download; a local site
# is not downloaded, so the crates are vendored after the rsync instead (needs crates.io,
# pinned by the committed Cargo.lock).
define OSECT_SENSOR_CARGO_VENDOR
	cd $(@D) && mkdir -p .cargo && \
		$(PKG_CARGO_ENV) cargo vendor --locked VENDOR > .cargo/config.toml
endef
OSECT_SENSOR_POST_RSYNC_HOOKS += OSECT_SENSOR_CARGO_VENDOR

# The pcap crate's build script asks the *build host's* libpcap for its version unless told;
# LIBPCAP_VER pins the target's (package/libpcap), LIBPCAP_LIBDIR points at it.
OSECT_SENSOR_CARGO_ENV = \
	LIBPCAP_VER=$(LIBPCAP_VERSION) \
	LIBPCAP_LIBDIR=$(STAGING_DIR)/usr/lib \
	CARGO_PROFILE_RELEASE_OPT_LEVEL=s \
	CARGO_PROFILE_RELEASE_LTO=fat \
	CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1 \
	CARGO_PROFILE_RELEASE_PANIC=abort \
	CARGO_PROFILE_RELEASE_DEBUG=0 \
	CARGO_PROFILE_RELEASE_STRIP=true
OSECT_SENSOR_CARGO_BUILD_OPTS = -p osect-sensor --bin osect-sensor

# cargo install would rebuild into its own folder; the binary of the build step is installed
# as is, and the run-time folders the overlay's scripts expect are created.
define OSECT_SENSOR_INSTALL_TARGET_CMDS
	$(INSTALL) -D -m 0755 \
		$(@D)/target/$(RUSTC_TARGET_NAME)/release/osect-sensor \
		$(TARGET_DIR)/usr/bin/osect-sensor
	$(INSTALL) -d -m 0755 $(TARGET_DIR)/etc/osect $(TARGET_DIR)/usr/share/osect/rules
endef

define OSECT_SENSOR_USERS
	osect -1 osect -1 * /data/osect /bin/false - osect-sensor capture service
endef

$(eval $(cargo-package))

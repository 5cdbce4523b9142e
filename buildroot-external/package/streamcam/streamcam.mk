################################################################################
#
# streamcam
#
################################################################################

# This repository at its checked-out commit, fetched with git rather than
# SITE_METHOD = local: the cargo download step then vendors the crates
# into the archive in DL_DIR, so that later builds of that commit need no
# network (a local site is rsynced and never vendored). Commit before
# building; uncommitted changes are not built.
STREAMCAM_SITE = $(realpath $(BR2_EXTERNAL_STREAMCAM_PATH)/..)
STREAMCAM_SITE_METHOD = git
STREAMCAM_VERSION = $(shell git -C $(BR2_EXTERNAL_STREAMCAM_PATH) rev-parse HEAD 2>/dev/null)
STREAMCAM_LICENSE = MIT or Apache-2.0
STREAMCAM_LICENSE_FILES = LICENSE-MIT LICENSE-APACHE

# No .hash file: the archive is this repository at its own commit, new with
# every commit (Buildroot warns and goes on); cargo checks the vendored
# crates against the checksums in Cargo.lock.

# bindgen (libcamera-sys, v4l2r) loads libclang; v4l2r needs Linux 6.5+
# uapi headers, newer than the toolchain's, so it reads the kernel's own.
STREAMCAM_DEPENDENCIES = host-clang libcamera linux alsa-lib opus
STREAMCAM_CARGO_ENV = \
	LIBCLANG_PATH=$(HOST_DIR)/lib \
	BINDGEN_EXTRA_CLANG_ARGS="--sysroot=$(STAGING_DIR) --target=$(RUSTC_TARGET_NAME)" \
	V4L2R_VIDEODEV2_H_PATH=$(@D)/kernel-headers/include

# Cameras through libcamera (the V4L2 encoder comes with it), and WebRTC
# for the status page (str0m; aws-lc is built from its C sources by the cc
# crate with the target's compiler: no cmake, Go or bindgen), and sound
# from a microphone (alsa-lib, and the system's libopus). cargo install
# builds again, so it gets the features too.
STREAMCAM_CARGO_BUILD_OPTS = --features libcamera,webrtc,audio
STREAMCAM_CARGO_INSTALL_OPTS = --features libcamera,webrtc,audio

define STREAMCAM_KERNEL_HEADERS
	$(LINUX_MAKE_ENV) $(MAKE) $(LINUX_MAKE_FLAGS) -C $(LINUX_DIR) \
		headers_install INSTALL_HDR_PATH=$(@D)/kernel-headers
endef
STREAMCAM_PRE_BUILD_HOOKS += STREAMCAM_KERNEL_HEADERS

define STREAMCAM_USERS
	streamcam -1 streamcam -1 * - - video,audio streamcam RTSP camera daemon
endef

# The unit, the default config and the image files from dist/: the same
# script every streamcam image uses.
define STREAMCAM_INSTALL_INIT_SYSTEMD
	$(@D)/dist/image/install $(TARGET_DIR)
endef

$(eval $(cargo-package))

SUMMARY = "Lean RTSP camera daemon for the Raspberry Pi"
SUMMARY:${PN}-system = "System configuration of the streamcam camera image"
DESCRIPTION = "streamcam streams a Raspberry Pi camera (libcamera) or a V4L2 \
               camera over RTSP, encoded once by the Pi's hardware H.264 \
               encoder and shared by every client; a systemd service with a \
               watchdog."
SECTION = "multimedia"
CVE_PRODUCT = "streamcam"
LICENSE = "MIT | Apache-2.0"
LIC_FILES_CHKSUM = "file://LICENSE-MIT;md5=5a772642529da96da7d8d2ad45bf21d9 \
                    file://LICENSE-APACHE;md5=22a53954e4e0ec258dfce4391e905dac"

# bindgen (libcamera-sys, v4l2r) runs libclang against the target's headers.
DEPENDS += "alsa-lib clang-native libcamera libopus"

PV = "0.1.0+git"

# The source tree this layer lives in (STREAMCAM_SRC_DIR, set by the layer),
# at its newest commit on main: a checkout builds itself. Uncommitted
# changes are not built.
SRC_URI = "git://${STREAMCAM_SRC_DIR};protocol=file;branch=main"
# nooelint: oelint.vars.autorev
SRCREV = "${AUTOREV}"

inherit cargo cargo-update-recipe-crates pkgconfig systemd useradd deploy

require ${BPN}-crates.inc

# Cameras through libcamera (which takes the V4L2 encoder along); the
# software encoder stays as the fallback for boards without one. WebRTC for
# the status page (str0m; aws-lc is built from its C sources by the cc
# crate with the target's compiler, with its bundled bindings: no cmake,
# Go or bindgen).
CARGO_BUILD_FLAGS += "--features libcamera,webrtc,audio"

export LIBCLANG_PATH = "${STAGING_LIBDIR_NATIVE}"
export BINDGEN_EXTRA_CLANG_ARGS = "${HOST_CC_ARCH}${TOOLCHAIN_OPTIONS} --target=${TARGET_SYS}"
# v4l2r reads the kernel's videodev2.h from the target sysroot.
export V4L2R_VIDEODEV2_H_PATH = "${STAGING_INCDIR}"

USERADD_PACKAGES = "${PN}"
USERADD_PARAM:${PN} = "--system --no-create-home --home-dir / --shell /sbin/nologin --groups video,audio streamcam"

SYSTEMD_SERVICE:${PN} = "streamcam.service"

do_install:append() {
    if [ "${systemd_unitdir}" != "${prefix}/lib/systemd" ]; then
        bbfatal "dist/image/install needs the usrmerge layout (DISTRO_FEATURES usrmerge)"
    fi
    # The unit, the default config and the image files: the same script
    # every streamcam image uses.
    ${S}/dist/image/install ${D}
}

# The files the user edits on the FAT boot partition.
do_deploy() {
    install -D -m 0644 ${S}/dist/streamcam.toml ${DEPLOYDIR}/streamcam/streamcam.toml
    install -D -m 0644 ${S}/dist/image/wpa_supplicant.conf.example \
        ${DEPLOYDIR}/streamcam/wpa_supplicant.conf.example
}

addtask deploy after do_install before do_build

# The image's system configuration around the daemon (from dist/image):
# networkd, mDNS, the journal in RAM, the boot-partition config.
PACKAGES =+ "${PN}-system"

FILES:${PN}-system += "${systemd_system_unitdir}/streamcam.service.d \
                       ${systemd_system_unitdir}/wpa_supplicant@wlan0.service.d \
                       ${systemd_system_unitdir}/sys-subsystem-net-devices-wlan0.device.wants \
                       ${systemd_unitdir}/network \
                       ${systemd_unitdir}/resolved.conf.d \
                       ${systemd_unitdir}/dnssd \
                       ${systemd_unitdir}/journald.conf.d \
                       ${systemd_unitdir}/system-preset"
CONFFILES:${PN} = "${sysconfdir}/streamcam/streamcam.toml"

RDEPENDS:${PN}-system = "${PN} systemd-networkd wpa-supplicant"

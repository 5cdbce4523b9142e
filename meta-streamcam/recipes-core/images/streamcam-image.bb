SUMMARY = "Read-only Raspberry Pi camera image streaming rtsp://streamcam.local:8554/stream"
DESCRIPTION = "Boots a Raspberry Pi 3B+ (or newer) straight into streamcam: \
               systemd, a read-only root, the journal in RAM, networkd DHCP \
               on Ethernet and Wi-Fi, mDNS, libcamera with the Raspberry Pi \
               pipeline and the bcm2835-codec encoder."
SECTION = "images"
LICENSE = "MIT"

inherit core-image

COMPATIBLE_MACHINE = "^rpi$"

IMAGE_FEATURES += "read-only-rootfs"
IMAGE_LINGUAS = ""

IMAGE_INSTALL = "packagegroup-core-boot \
                 streamcam \
                 streamcam-system \
                 libcamera \
                 kernel-modules \
                 linux-firmware-rpidistro-bcm43430 \
                 linux-firmware-rpidistro-bcm43455 \
                 ${CORE_IMAGE_EXTRA_INSTALL}"

# streamcam.toml and the Wi-Fi example on the boot partition, where the
# user edits them from any PC before the first boot.
IMAGE_BOOT_FILES += "streamcam/streamcam.toml;streamcam.toml streamcam/wpa_supplicant.conf.example;wpa_supplicant.conf.example"
# nooelint: oelint.vars.mispell.unknown
do_image_wic[depends] += "streamcam:do_deploy"

#!/bin/sh
# streamcam image, after the target tree is built: /boot is the SD card's
# FAT partition, mounted read-only; the daemon and Wi-Fi read the user's
# settings there (see dist/image).
set -eu
target=$1
mkdir -p "$target/boot"
if ! grep -q '^/dev/mmcblk0p1[[:space:]]' "$target/etc/fstab"; then
    echo '/dev/mmcblk0p1 /boot vfat ro,noatime 0 0' >>"$target/etc/fstab"
fi

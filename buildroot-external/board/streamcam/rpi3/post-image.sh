#!/usr/bin/env bash
# streamcam image, after the file systems are made: sdcard.img, whose boot
# partition holds the firmware, the kernel, the device trees, and the files
# the user edits from any PC (streamcam.toml, wpa_supplicant.conf.example).
set -euo pipefail
board=$(dirname "$0")
dist=$BR2_EXTERNAL_STREAMCAM_PATH/../dist
cp "$dist/streamcam.toml" "$dist/image/wpa_supplicant.conf.example" "$BINARIES_DIR/"
files=()
for f in "$BINARIES_DIR"/*.dtb "$BINARIES_DIR"/rpi-firmware/* "$BINARIES_DIR/Image" \
    "$BINARIES_DIR/streamcam.toml" "$BINARIES_DIR/wpa_supplicant.conf.example"; do
    files+=("\"${f#"$BINARIES_DIR"/}\"")
done
list=$(IFS=,; echo "${files[*]}")
sed "s|@BOOT_FILES@|$list|" "$board/genimage.cfg.in" >"$BINARIES_DIR/genimage.cfg"
exec support/scripts/genimage.sh -c "$BINARIES_DIR/genimage.cfg"

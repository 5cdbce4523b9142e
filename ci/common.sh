# Shared by the ci/ scripts (sourced, not run).

# The real clients the loopback tests drive, and what the tests build with.
CLIENT_PACKAGES=(
    build-essential pkg-config systemd libclang-dev
    ffmpeg
    gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
    gstreamer1.0-plugins-bad gstreamer1.0-libav gstreamer1.0-rtsp
    gir1.2-gst-rtsp-server-1.0 python3-gi
)

SUDO=()
[ "$(id -u)" -ne 0 ] && SUDO=(sudo)

# apt-get, quiet and non-interactive.
apt() { "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -qq "$@"; }

# Installs the Debian packages named that are not installed yet.
install_packages() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    printf 'ci: installing %s\n' "${missing[*]}" >&2
    apt update && apt install -y --no-install-recommends "${missing[@]}" >/dev/null
}

# Sums the "test result: ... N passed; M failed" lines of cargo test output
# in file $1; prints "passed failed".
count_results() {
    awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
         END { printf "%d %d\n", p, f }' "$1"
}

# The V4L2 code needs newer kernel uapi headers than Debian 12's.
use_uapi_headers() {
    V4L2R_VIDEODEV2_H_PATH=$(ci/uapi-headers) || return 1
    export V4L2R_VIDEODEV2_H_PATH
}

# shellcheck shell=bash
# Shared by the ci/ scripts (sourced, not run): the harness every tier uses
# (log lines under the script's name, checks counted and timed, "N passed,
# N failed" last) and the packages the tests need.

# The harness. A script logs with `log`, counts with `pass`/`fail` or
# `check NAME COMMAND...`, adds another runner's counts with `add_counts`,
# and ends with `summary`, whose status says whether everything passed.
CI_NAME=$(basename "$(dirname "$0")")/${0##*/}
passed=0
failed=0
log() { printf '%s\n' "$CI_NAME: $*" >&2; }
seconds_since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", b - a }'; }
pass() {
    log "pass: $*"
    passed=$((passed + 1))
}
fail() {
    log "FAIL: $*"
    failed=$((failed + 1))
}
# Runs COMMAND (its output to stderr) as one check, timed; returns its status.
check() {
    local name=$1 t=$EPOCHREALTIME
    shift
    if "$@" >&2; then
        pass "$name ($(seconds_since "$t") s)"
    else
        fail "$name ($(seconds_since "$t") s)"
        return 1
    fi
}
add_counts() {
    passed=$((passed + $1))
    failed=$((failed + $2))
}
summary() {
    echo "$passed passed, $failed failed"
    [ "$failed" -eq 0 ]
}
# A step the rest cannot do without: one failure, the counts, and out.
abort() {
    fail "$*"
    summary
    exit 1
}
# Adds the counts of the "N passed, N failed" line that ends file $1 (a
# file without one is a failure).
add_summary_of() {
    local line
    line=$(tail -n 1 "$1" 2>/dev/null)
    if [[ $line =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then
        add_counts "${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}"
    else
        fail "$1 ends without \"N passed, N failed\""
    fi
}

# The real clients the loopback tests drive, and what the tests build with.
# shellcheck disable=SC2034 # used by the scripts that source this file
CLIENT_PACKAGES=(
    build-essential pkg-config systemd libclang-dev curl
    libasound2-dev libopus-dev libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libfaketime
    ffmpeg
    gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
    gstreamer1.0-plugins-bad gstreamer1.0-libav gstreamer1.0-rtsp
    gir1.2-gst-rtsp-server-1.0 python3-gi
    nginx-light libnginx-mod-rtmp libnginx-mod-stream srt-tools
)

# The features this machine's builds test (unit, loopback and vm tiers share
# one build): every one that runs here but WebRTC (the browser tier's) and
# native libcamera (Debian 12's is too old: ci/libcamera).
# shellcheck disable=SC2034 # used by the scripts that source this file
HOST_FEATURES=v4l2,audio,gstreamer

# Every build of a test run is made once from a clean tree: Cargo's
# incremental cache would only take disk (as much again as the build).
# Passed into cross's containers (Cross.toml) and the chroot (ci/libcamera).
export CARGO_INCREMENTAL=0

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

# Runs a `cargo test` command, its output to stderr, and adds its counts;
# a run that fails without a failed test (a build error) or reports no test
# at all counts as one failure.
run_cargo_tests() {
    local out status p f
    out=$(mktemp)
    "$@" 2>&1 | tee "$out" >&2
    status=${PIPESTATUS[0]}
    read -r p f < <(count_results "$out")
    rm -f "$out"
    if { [ "$status" -ne 0 ] && [ "$f" -eq 0 ]; } || [ $((p + f)) -eq 0 ]; then f=$((f + 1)); fi
    add_counts "$p" "$f"
}

# Prometheus' promtool, which the HTTP tests check /metrics with.
use_promtool() {
    PROMTOOL=$(ci/promtool) || return 1
    export PROMTOOL
}

# The V4L2 code needs newer kernel uapi headers than Debian 12's.
use_uapi_headers() {
    V4L2R_VIDEODEV2_H_PATH=$(ci/uapi-headers) || return 1
    export V4L2R_VIDEODEV2_H_PATH
}

# Home Assistant's ONVIF client library (onvif-zeep-async from PyPI) and
# its discovery library (wsdiscovery), with what they pull in pinned in
# tests/onvif/requirements.txt, in a virtual environment of Debian's
# Python under target/tools/onvif, made again when the pins change.
# Wheels only, but for wsdiscovery, which PyPI has as source only (pure
# Python). Exports ONVIF_PYTHON.
use_onvif_client() {
    local tools=$PWD/target/tools/onvif req=tests/onvif/requirements.txt
    install_packages python3 python3-venv || return 1
    if ! [ -x "$tools/bin/python" ] || ! cmp -s "$req" "$tools/requirements.txt"; then
        rm -rf "$tools" && /usr/bin/python3 -m venv "$tools" &&
            "$tools/bin/pip" install --quiet --disable-pip-version-check --no-input \
                --use-pep517 --only-binary :all: --no-binary wsdiscovery -r "$req" >&2 &&
            cp "$req" "$tools/requirements.txt" || return 1
    fi
    export ONVIF_PYTHON=$tools/bin/python
}

# Headless Chromium for the browser tests and bench/browser: Debian's
# `chromium`, and puppeteer-core as tests/browser's lock file pins it,
# installed with `npm ci` under target/tools/browser (again only when that
# file changes). Exports BROWSER_TOOLS (its node_modules) and CHROMIUM.
# shellcheck disable=SC2034 # used by the scripts that source this file
BROWSER_PACKAGES=(chromium nodejs iproute2)
use_browser() {
    local tools=$PWD/target/tools/browser lock=tests/browser/package-lock.json
    install_packages "${BROWSER_PACKAGES[@]}" || return 1
    if ! [ -d "$tools/node_modules/puppeteer-core" ] || ! cmp -s "$lock" "$tools/package-lock.json"; then
        command -v npm >/dev/null || install_packages npm || return 1
        rm -rf "$tools" && mkdir -p "$tools" &&
            cp tests/browser/package.json "$lock" "$tools/" &&
            (cd "$tools" && npm ci --no-audit --no-fund --ignore-scripts >&2) || return 1
    fi
    export BROWSER_TOOLS=$tools/node_modules CHROMIUM=${CHROMIUM:-$(command -v chromium)}
}

# A network namespace ($1) for a browser that does WebRTC: loopback, and
# sc0 at BROWSER_HOST paired with sc1, which carries the default route
# (Chromium gathers WebRTC candidates only on the default route's
# interface, never on loopback; nothing answers there, no traffic
# leaves). IPv6 is off on the pair: addresses appearing after DAD would
# be a network change under a page Chromium is loading. Exports
# BROWSER_HOST.
make_browser_netns() {
    local ns=$1
    export BROWSER_HOST=10.203.0.1
    ip netns add "$ns" &&
        ip -n "$ns" link set lo up &&
        ip -n "$ns" link add sc0 type veth peer name sc1 &&
        ip netns exec "$ns" sysctl -qw net.ipv6.conf.sc0.disable_ipv6=1 \
            net.ipv6.conf.sc1.disable_ipv6=1 &&
        ip -n "$ns" addr add "$BROWSER_HOST/24" dev sc0 &&
        ip -n "$ns" addr add 10.203.0.2/24 dev sc1 &&
        ip -n "$ns" link set sc0 up &&
        ip -n "$ns" link set sc1 up &&
        ip -n "$ns" route add default via 10.203.0.2 dev sc0
}

# A LAN of two network namespaces for multicast: the camera's ($1, lan0
# at LAN_CAMERA, and LAN_CAMERA6 for IPv6) and the viewers' ($2, lan1 at
# 10.204.0.2 and fd00:204::2), joined by a veth pair, each with its
# multicast route over it. Exports LAN_CAMERA, LAN_CAMERA6, LAN_OUTSIDER.
make_lan_netns() {
    local camera=$1 viewers=$2
    export LAN_CAMERA=10.204.0.1 LAN_CAMERA6=fd00:204::1 LAN_OUTSIDER=198.51.100.7
    ip netns add "$camera" && ip netns add "$viewers" &&
        ip -n "$camera" link set lo up && ip -n "$viewers" link set lo up &&
        ip -n "$camera" link add lan0 type veth peer name lan1 netns "$viewers" &&
        ip -n "$camera" addr add "$LAN_CAMERA6/64" dev lan0 nodad &&
        ip -n "$viewers" addr add fd00:204::2/64 dev lan1 nodad &&
        ip -n "$camera" addr add "$LAN_CAMERA/24" dev lan0 &&
        ip -n "$viewers" addr add 10.204.0.2/24 dev lan1 &&
        ip -n "$camera" link set lan0 up && ip -n "$viewers" link set lan1 up &&
        ip -n "$camera" route add 224.0.0.0/4 dev lan0 &&
        ip -n "$viewers" route add 224.0.0.0/4 dev lan1 &&
        ip -n "$viewers" addr add "$LAN_OUTSIDER/32" dev lan1 &&
        ip -n "$camera" route add "$LAN_OUTSIDER/32" dev lan0
}

# A Debian chroot of suite $1 at $2 (minbase, with the comma-separated
# packages $3), made with mmdebstrap once per package list and kept. The
# signatures are checked, not the Release file's Valid-Until: a mirror may
# serve a testing suite (forky) from a snapshot older than a week.
make_chroot() {
    local suite=$1 root=$2 packages=$3 mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
    if [ "$(cat "$root/.streamcam-packages" 2>/dev/null)" = "$packages" ]; then
        return 0
    fi
    install_packages mmdebstrap || return 1
    log "making a Debian $suite chroot with $packages"
    rm -rf "$root" && mkdir -p "$(dirname "$root")" || return 1
    "${SUDO[@]}" mmdebstrap --quiet --variant=minbase --include="$packages" \
        --aptopt='Acquire::Check-Valid-Until "false"' "$suite" "$root" \
        "deb $mirror $suite main" >&2 || return 1
    echo "$packages" >"$root/.streamcam-packages"
}

# The version of package $2 installed in the chroot at $1.
chroot_version() {
    # shellcheck disable=SC2016 # a dpkg-query format, not a shell expansion
    chroot "$1" dpkg-query -W -f='${Version}' "$2"
}

#!/usr/bin/env bash
# Runs Curtain's whole test suite on a fresh machine: installs what the tests need (redis-server and
# redis-tools, for the conformance suite and the interoperability tests; moto_server and boto3, for the
# S3 store; iproute2, for the network namespaces of the multi-host scenario; chromium, chromium-driver
# and selenium, for the dashboard's browser test; buildah, for the image test), builds the default
# configuration (no package traits) and checks it runs, then builds with every trait on (TLS, Signing) with
# warnings checked, runs every test target (the lease and reconnection tests in a process of their own),
# the porting suite (Scripts/port-diff.sh), the dashboard in a browser (Scripts/dashboard-browser-test.py),
# the image test (Scripts/image-test.sh), then the multi-host scenario (Scripts/cluster-test.sh, as root).
# Exits non-zero on any failure.
#
#   Scripts/test.sh               the whole suite (what .ci/run runs)
#   Scripts/test.sh --under-load  the same while stress-ng keeps every core busy (stress-ng --cpu $(nproc),
#                                 installed if missing): the suite must hold on a shared, busy machine
set -euo pipefail
cd "$(dirname "$0")/.."

under_load=0
for argument in "$@"; do
    case "$argument" in
        --under-load) under_load=1 ;;
        -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "Scripts/test.sh: unknown option '$argument' (known: --under-load, --help)" >&2; exit 2 ;;
    esac
done

need_apt=()
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || need_apt+=(redis-tools)
command -v redis-benchmark >/dev/null 2>&1 || need_apt+=(redis-tools)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
command -v ip >/dev/null 2>&1 || need_apt+=(iproute2)  # network namespaces for Scripts/cluster-test.sh
# A real browser for the dashboard's test (Playwright's browser download does not work here).
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
[ -x /usr/bin/chromedriver ] || need_apt+=(chromium-driver)
if [ "$under_load" -eq 1 ]; then command -v stress-ng >/dev/null 2>&1 || need_apt+=(stress-ng); fi
if ((${#need_apt[@]})); then
    echo "==> installing ${need_apt[*]}"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
    # The Debian package starts a system redis on 6379; the tests start their own on free ports.
    ($SUDO service redis-server stop || true) >/dev/null 2>&1
fi
echo "==> $(redis-server --version)"

# An S3 server for CurtainS3's tests (moto_server) and boto3 for the cross-client check, in a venv of the
# project (.venv-s3, ignored by git); versions pinned.
if ! .venv-s3/bin/python -c "import moto, boto3" >/dev/null 2>&1; then
    echo "==> installing moto[server] and boto3 into .venv-s3"
    if ! python3 -m venv .venv-s3 >/dev/null 2>&1; then
        SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-venv >/dev/null
        python3 -m venv .venv-s3
    fi
    .venv-s3/bin/pip install -q 'moto[server]==5.0.28' 'boto3==1.35.99'
fi
echo "==> moto $(.venv-s3/bin/python -c 'import moto; print(moto.__version__)')"
# Selenium (driving Debian's chromium through chromium-driver) for the dashboard's browser test, pinned.
if ! .venv-s3/bin/python -c "import selenium, prometheus_client" >/dev/null 2>&1; then
    echo "==> installing selenium and prometheus-client into .venv-s3"
    .venv-s3/bin/pip install -q 'selenium==4.27.1' 'prometheus-client==0.21.1'
fi
echo "==> selenium $(.venv-s3/bin/python -c 'import selenium; print(selenium.__version__)'), $(/usr/bin/chromium --version 2>/dev/null)"

# Builds with `swift build "$@"`, printing errors, warnings and the result; fails on an error or on a warning
# in Curtain's own code (dependencies' warnings are theirs).
checked_build() {
    local log
    log=$(mktemp)
    set +e
    swift build "$@" >"$log" 2>&1
    local build_status=$?
    set -e
    grep -E "error:|warning:|Build complete" "$log" | grep -v "Source files for target" || true
    if [ "$build_status" -ne 0 ]; then echo "==> FAILED: the build failed (swift build $*)"; tail -50 "$log"; exit 1; fi
    if grep -E "^$(pwd)/(Sources|Tests|Examples)/.*warning:" "$log"; then
        echo "==> FAILED: the build has warnings in Curtain's own code (swift build $*)"
        exit 1
    fi
}

# The default build (no package traits: no TLS, no signing) is what a newcomer's first command builds: it
# must build without warnings, run, and refuse rediss://, CURTAIN_SECRET and CURTAIN_ACTOR_TLS with errors
# naming the trait.
echo "==> building the default configuration (no traits)"
checked_build
demo=$(swift build --show-bin-path)/curtain-demo
echo "==> the default build runs pi and refuses what needs a trait"
CURTAIN_BACKEND=inprocess CURTAIN_WORKERS=1 "$demo" pi --tasks 4 --samples 200000 >/dev/null
refusal=$(CURTAIN_BACKEND=rediss://127.0.0.1:1 "$demo" pi --tasks 2 --samples 1000 2>&1 || true)
grep -q -- "--traits TLS" <<<"$refusal" || { echo "==> FAILED: a rediss:// store was not refused with the TLS trait's name: $refusal"; exit 1; }
refusal=$(CURTAIN_SECRET=s3cret CURTAIN_BACKEND=inprocess "$demo" pi --tasks 2 --samples 1000 2>&1 || true)
grep -q -- "--traits Signing" <<<"$refusal" || { echo "==> FAILED: CURTAIN_SECRET was not refused with the Signing trait's name: $refusal"; exit 1; }
refusal=$(CURTAIN_ACTOR_TLS=1 CURTAIN_BACKEND=inprocess "$demo" pi --tasks 2 --samples 1000 2>&1 || true)
grep -q -- "--traits TLS" <<<"$refusal" || { echo "==> FAILED: CURTAIN_ACTOR_TLS was not refused with the TLS trait's name: $refusal"; exit 1; }

# Everything else runs with every trait on, so TLS and signing are tested too.
echo "==> building (debug, with tests, every trait on)"
checked_build --build-tests --enable-all-traits

if [ "$under_load" -eq 1 ]; then
    echo "==> loading every core: stress-ng --cpu $(nproc) (until the suite ends)"
    stress-ng --cpu "$(nproc)" --timeout 3600s --quiet &
    stress_pid=$!
    trap 'kill "$stress_pid" 2>/dev/null || true; wait "$stress_pid" 2>/dev/null || true' EXIT
    # Started before anything is measured: a stress-ng that could not start must not pass for a loaded run.
    sleep 1
    kill -0 "$stress_pid" 2>/dev/null || { echo "==> FAILED: stress-ng did not start"; exit 1; }
fi

# Tests of lock leases and of reconnection assert how soon a store answers (a lease renewed within a third of
# it, a restarted server reached again). They run in a process of their own after the rest, so the suite's
# own worker-spawning tests do not starve them; with --under-load, stress-ng still keeps every core busy.
timing='aLockExcludesAndFencesItsHolders|aLockWhoseHolderIsKilledIsFreeAfterItsLease|aLeaseIsRenewedWhileItsHolderKeepsEveryCoreBusy|aHolderWhoseStoreStopsAnsweringStopsBelievingItHoldsTheLock|reconnectsAfterTheServerRestarts'
echo "==> running the test suite"
swift test --skip-build --enable-all-traits --skip "$timing"
echo "==> running the lease and reconnection tests in a process of their own"
timing_log=$(mktemp)
set +e
swift test --skip-build --enable-all-traits --filter "$timing" 2>&1 | tee "$timing_log"
timing_status=${PIPESTATUS[0]}
set -e
[ "$timing_status" -eq 0 ] || { echo "==> FAILED: the lease and reconnection tests"; exit 1; }
# All five ran (a renamed test would otherwise drop out silently).
ran=$(grep -cE "Test (aLock|aLease|aHolder|reconnects)[A-Za-z]*\(.*passed" "$timing_log" || true)
[ "$ran" -eq 5 ] || { echo "==> FAILED: expected 5 lease and reconnection tests to pass, $ran did"; exit 1; }
rm -f "$timing_log"

# The porting suite: each plain program and its Curtain version print the same on inprocess, processes and
# a redis-server (the debug build above built them all).
echo "==> running the porting suite (Scripts/port-diff.sh)"
bash Scripts/port-diff.sh --skip-build

# The dashboard and a job's report in a real browser (headless chromium): lanes, failures, progress, no
# console errors, no request leaving the origin, a screenshot; the trace's nesting and flows; /metrics
# parsed by the Prometheus client.
echo "==> the dashboard in a browser (Scripts/dashboard-browser-test.py)"
.venv-s3/bin/python Scripts/dashboard-browser-test.py .build/debug/curtain-test-worker .build

# The deployable image without Docker: Scripts/image.sh (buildah) on the debug build, its binary run inside
# the image as the only worker of a driver on this host, and a Lambda target refused for a too-new glibc.
echo "==> the image (Scripts/image-test.sh)"
command -v buildah >/dev/null 2>&1 || {
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq buildah >/dev/null
}
if [ "$(id -u)" -eq 0 ]; then bash Scripts/image-test.sh; else sudo bash Scripts/image-test.sh; fi

# The multi-host scenario and the forgery test: network namespaces on this machine (needs root).
echo "==> running the multi-host scenario (Scripts/cluster-test.sh)"
if [ "$(id -u)" -eq 0 ]; then bash Scripts/cluster-test.sh; else sudo bash Scripts/cluster-test.sh; fi

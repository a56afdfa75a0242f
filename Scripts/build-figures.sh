#!/usr/bin/env bash
# Measures what a newcomer waits for, each from a fresh clone of the current commit (its own directory, so
# nothing is reused): the README's first command to the printed π, and release and debug builds of
# curtain-demo with the default traits and with every trait on. Prints one line per figure with wall time,
# CPU time and the load average before it started (these machines are shared: the load says how far to
# trust a figure). Not part of CI (a full run is about 40 minutes on 2 cores).
#
#   Scripts/build-figures.sh              every figure
#   Scripts/build-figures.sh first-pi     only the README's first command (then: release-full, debug-default,
#                                         debug-full, release-default; several may be given)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
commit=$(git -C "$ROOT" rev-parse --short HEAD)
[ -z "$(git -C "$ROOT" status --porcelain --untracked-files=no)" ] || echo "note: uncommitted changes are not measured (a clone of $commit is)" >&2

figures=("$@")
[ ${#figures[@]} -gt 0 ] || figures=(first-pi release-full debug-default debug-full)
work=$(mktemp -d /tmp/curtain-build-figures.XXXXXX)
trap 'rm -rf "$work"' EXIT

# measure NAME COMMAND...: runs COMMAND in a fresh clone, printing the figure.
measure() {
    local name=$1; shift
    local dir=$work/$name
    git clone --quiet --no-hardlinks "$ROOT" "$dir"
    local load
    load=$(cut -d' ' -f1-3 /proc/loadavg)
    local log=$work/$name.log
    if ! (cd "$dir" && /usr/bin/time -f "%e %U %S" -o "$work/$name.time" "$@" >"$log" 2>&1); then
        echo "$name: FAILED (see below)"; tail -20 "$log"; return 1
    fi
    read -r wall user sys <"$work/$name.time"
    printf '%-16s wall %6.0f s (%4.1f min)  cpu %6.0f s  load before %s  commit %s\n' \
        "$name" "$wall" "$(echo "$wall / 60" | bc -l)" "$(echo "$user + $sys" | bc -l)" "$load" "$commit"
    if [ "$name" = first-pi ]; then grep -m1 'π ≈' "$log" | sed 's/^/                 printed: /'; fi
    local exe
    exe=$(cd "$dir" && find .build -path '*/release/curtain-demo' -o -path '*/debug/curtain-demo' | head -1)
    if [ -n "$exe" ]; then
        printf '%-16s curtain-demo is %.1f MB\n' "" "$(echo "$(stat -c %s "$dir/$exe") / 1048576" | bc -l)"
        # CURTAIN_FIGURES_KEEP=DIR keeps each executable (as curtain-demo-NAME), e.g. to measure an idle
        # worker's memory with `curtain-bench memory --worker-executable`.
        if [ -n "${CURTAIN_FIGURES_KEEP:-}" ]; then mkdir -p "$CURTAIN_FIGURES_KEEP"; cp "$dir/$exe" "$CURTAIN_FIGURES_KEEP/curtain-demo-$name"; fi
    fi
    rm -rf "$dir"
}

for figure in "${figures[@]}"; do
    case "$figure" in
        first-pi) measure first-pi swift run -c release curtain-demo pi ;;
        release-default) measure release-default swift build -c release --product curtain-demo ;;
        release-full) measure release-full swift build -c release --enable-all-traits --product curtain-demo ;;
        debug-default) measure debug-default swift build --product curtain-demo ;;
        debug-full) measure debug-full swift build --enable-all-traits --product curtain-demo ;;
        *) echo "build-figures.sh: unknown figure '$figure' (first-pi, release-default, release-full, debug-default, debug-full)" >&2; exit 2 ;;
    esac
done

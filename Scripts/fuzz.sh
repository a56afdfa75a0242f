#!/usr/bin/env bash
# Long robustness run for the RESP decoder, the embedded store and the client (not part of CI: it takes
# minutes). The test suite runs a smaller seeded decoder fuzz on every `swift test`.
#
#   Scripts/fuzz.sh [--count N] [--server-count N] [--client-count N] [--seed S]
#                   [--libfuzzer-seconds N | --no-libfuzzer] [--max-attribute-chain N] [--skip-reply-check]
#
# 1. seeded decoder fuzz (curtain-fuzz decoder): N >= 1,000,000 random, valid, mutated and hostile inputs;
# 2. seeded server fuzz (curtain-fuzz server): raw connections to an in-process store, canary keys checked;
# 3. seeded client fuzz (curtain-fuzz client): a fake server feeds scripted replies to RESPConnection;
# 3b. seeded payload fuzz (curtain-fuzz payload): N valid, cut, mutated and random binary payloads decoded
#    as eight types; valid ones must round-trip, the rest fail with a DecodingError, peak RSS stays small;
# 4. libFuzzer on the decoder, if the toolchain can build it (-sanitize=fuzzer), for a bounded time, with
#    its corpus in .build-libfuzzer/corpus and any crashing input in .build-libfuzzer/artifacts.
# Exits non-zero on the first failure. A crash of a seeded run names the input; replay it with
#   .build-fuzz/release/curtain-fuzz decoder --seed S --index I
set -euo pipefail
cd "$(dirname "$0")/.."

count=1000000
server_count=500000
client_count=50000
seed=1
libfuzzer_seconds=60
decoder_extra=()
server_extra=()

while [[ $# -gt 0 ]]; do
    case "$1" in
        --count) count="$2"; shift 2 ;;
        --server-count) server_count="$2"; shift 2 ;;
        --client-count) client_count="$2"; shift 2 ;;
        --seed) seed="$2"; shift 2 ;;
        --libfuzzer-seconds) libfuzzer_seconds="$2"; shift 2 ;;
        --no-libfuzzer) libfuzzer_seconds=0; shift ;;
        --max-attribute-chain) decoder_extra+=(--max-attribute-chain "$2"); shift 2 ;;
        --skip-reply-check) server_extra+=(--skip-reply-check); shift ;;
        -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
        *) echo "fuzz.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
    esac
done
if (( count < 1000000 )); then
    echo "fuzz.sh: note: --count $count is below the 1,000,000 inputs a full run uses" >&2
fi

step() { printf '\n==> %s\n' "$*"; }

# A hang is a failure too: every seeded run gets a generous wall-clock limit.
run_bounded() {
    local limit="$1"; shift
    local status=0
    timeout --signal=KILL "$limit" "$@" || status=$?
    if (( status == 137 )); then
        echo "fuzz.sh: '$*' did not finish within ${limit}s (hang?)" >&2
    fi
    return "$status"
}

step "building curtain-fuzz (release)"
swift build -c release --scratch-path .build-fuzz --product curtain-fuzz
bin=.build-fuzz/release/curtain-fuzz

step "decoder: $count inputs, seed $seed"
run_bounded 3600 "$bin" decoder --count "$count" --seed "$seed" ${decoder_extra[@]+"${decoder_extra[@]}"}

step "server: $server_count inputs, seed $seed"
run_bounded 1800 "$bin" server --count "$server_count" --seed "$seed" ${server_extra[@]+"${server_extra[@]}"}

step "client: $client_count connections, seed $seed"
run_bounded 1800 "$bin" client --count "$client_count" --seed "$seed"

step "payload: $count inputs, seed $seed"
run_bounded 3600 "$bin" payload --count "$count" --seed "$seed"

if (( libfuzzer_seconds <= 0 )); then
    step "libFuzzer: skipped"
    exit 0
fi

step "libFuzzer: building curtain-fuzz with -sanitize=fuzzer"
if ! swift build -c release --scratch-path .build-libfuzzer --product curtain-fuzz \
    -Xswiftc -sanitize=fuzzer -Xswiftc -parse-as-library -Xswiftc -DCURTAIN_LIBFUZZER; then
    echo "fuzz.sh: libFuzzer build failed; the seeded runs above passed, skipping libFuzzer" >&2
    exit 0
fi
fuzzer=.build-libfuzzer/release/curtain-fuzz
corpus=.build-libfuzzer/corpus
artifacts=.build-libfuzzer/artifacts
mkdir -p "$corpus" "$artifacts"

# Seed the corpus with one frame of every type, and give libFuzzer the protocol's tokens.
seed_frame() { printf '%b' "$2" > "$corpus/seed-$1"; }
seed_frame simple '+OK\r\n'
seed_frame error '-ERR unknown command\r\n'
seed_frame integer ':-9223372036854775808\r\n'
seed_frame bulk '$5\r\nhe\r\no\r\n'
seed_frame null-bulk '$-1\r\n'
seed_frame array '*3\r\n$3\r\nSET\r\n$1\r\nk\r\n*-1\r\n'
seed_frame resp3 '%2\r\n+a\r\n,1.5e300\r\n~2\r\n_\r\n#t\r\n>1\r\n(12345678901234567890\r\n'
seed_frame errors '!5\r\nERR x\r\n=15\r\ntxt:Some string\r\n'
seed_frame attribute '|1\r\n+ttl\r\n:1\r\n*1\r\n,inf\r\n'
seed_frame nested '*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n'
dict=.build-libfuzzer/resp.dict
cat > "$dict" <<'DICT'
crlf="\x0d\x0a"
cr="\x0d"
lf="\x0a"
null_bulk="$-1\x0d\x0a"
null_array="*-1\x0d\x0a"
null="_\x0d\x0a"
true="#t\x0d\x0a"
huge_bulk="$99999999999\x0d\x0a"
huge_array="*2147483648\x0d\x0a"
overflow=":9223372036854775808\x0d\x0a"
array1="*1\x0d\x0a"
map1="%1\x0d\x0a"
set1="~1\x0d\x0a"
push1=">1\x0d\x0a"
attr0="|0\x0d\x0a"
attr1="|1\x0d\x0a"
stream="$?\x0d\x0a"
inf=",inf\x0d\x0a"
nan=",nan\x0d\x0a"
verbatim="=5\x0d\x0atxt:x\x0d\x0a"
minus_one="-1"
DICT

step "libFuzzer: ${libfuzzer_seconds}s on the decoder (corpus $corpus)"
"$fuzzer" -max_total_time="$libfuzzer_seconds" -runs=100000000 -max_len=8192 -timeout=10 -rss_limit_mb=4096 \
    -dict="$dict" -artifact_prefix="$artifacts/" -print_final_stats=1 "$corpus"

step "all fuzz runs passed"

#!/usr/bin/env bash
# Runs wpkg's fuzz targets with cargo-fuzz (libFuzzer, AddressSanitizer, debug
# assertions and overflow checks on) for SECONDS each, and prints what they did.
#
#     bash fuzz/run.sh SECONDS [TARGET...]      # no TARGET: every target
#
# Seeds are read from fuzz/corpus/NAME and past crashes from fuzz/regressions/NAME;
# what a run learns goes to fuzz/work/NAME (ignored by git), so the checked-in seeds
# stay small. A target that crashes does not stop the others: each new
# crash-/oom-/timeout- artifact is copied to fuzz/regressions/NAME/, which
# `cargo test` (tests/all/fuzz_replay.rs) replays from then on. Full logs are in
# fuzz/logs/NAME.log. Exits 1 if any target crashed or failed to run.
#
# Needs the nightly toolchain and cargo-fuzz; installs them when missing.
set -euo pipefail

usage() {
    echo "usage: bash fuzz/run.sh SECONDS [TARGET...]" >&2
    exit 2
}

[ $# -ge 1 ] || usage
seconds=$1
shift
case $seconds in
'' | *[!0-9]*) usage ;;
esac

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

if ! rustup toolchain list | grep -q '^nightly'; then
    echo "installing the nightly toolchain (cargo-fuzz needs it)" >&2
    rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz" >&2
    cargo install --locked cargo-fuzz
fi

# The fuzz crate is its own workspace with its own lock file: start it from the main
# one, so the wpkg crates are fuzzed with the dependency versions they ship with.
if [ ! -f fuzz/Cargo.lock ]; then
    cp Cargo.lock fuzz/Cargo.lock
fi

if [ $# -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo +nightly fuzz list)
fi

# Build first: a build failure is not a crash, and the runs below then start at once.
for t in "${targets[@]}"; do
    cargo +nightly fuzz build "$t"
done

# The store, archive and cache targets write and fsync temporary files for every
# input; on tmpfs that costs nothing.
run_tmp=${TMPDIR:-/tmp}
if [ -d /dev/shm ] && [ -w /dev/shm ]; then
    run_tmp=/dev/shm
fi

mkdir -p fuzz/logs
stamp=$(mktemp)
trap 'rm -f "$stamp"' EXIT
failed=0
rows=()

for t in "${targets[@]}"; do
    work=fuzz/work/$t
    artifacts=fuzz/artifacts/$t
    regressions=fuzz/regressions/$t
    log=fuzz/logs/$t.log
    mkdir -p "$work" "$artifacts"
    dirs=("$work" "fuzz/corpus/$t")
    if [ -d "$regressions" ]; then
        dirs+=("$regressions")
    fi
    touch "$stamp"
    start=$(date +%s)
    echo "fuzzing $t for ${seconds}s" >&2
    rc=0
    # -detect_leaks=0: the registry and cache targets keep threads and statics
    # (a fake registry, an HTTP client, a wasmtime engine) across inputs, and a leak
    # in safe Rust is not what these targets look for.
    # -timeout=60: an input that hangs (a stuck request) is reported, not waited out.
    TMPDIR=$run_tmp cargo +nightly fuzz run "$t" "${dirs[@]}" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=60 \
        -detect_leaks=0 -print_final_stats=1 >"$log" 2>&1 || rc=$?
    elapsed=$(($(date +%s) - start))

    runs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | tail -n 1 | grep -o '[0-9]*$' || true)
    if [ -z "$runs" ]; then
        runs=$(grep -oE '^#[0-9]+' "$log" | tail -n 1 | tr -d '#' || true)
    fi
    corpus=$(grep -oE 'corp: [0-9]+' "$log" | tail -n 1 | grep -oE '[0-9]+' || true)
    if [ -z "$corpus" ]; then
        corpus=$(find "$work" "fuzz/corpus/$t" -type f 2>/dev/null | wc -l || true)
    fi

    crashes=0
    while IFS= read -r -d '' f; do
        mkdir -p "$regressions"
        cp "$f" "$regressions/"
        echo "  $t: $(basename "$f") saved to $regressions/" >&2
        crashes=$((crashes + 1))
    done < <(find "$artifacts" -maxdepth 1 -type f \
        \( -name 'crash-*' -o -name 'oom-*' -o -name 'timeout-*' \) -newer "$stamp" -print0)

    status=ok
    if [ "$crashes" -gt 0 ]; then
        status=CRASH
        failed=1
        grep -E 'panicked at|ERROR: libFuzzer|SUMMARY' "$log" | head -n 5 | sed 's/^/    /' >&2 || true
    elif [ "$rc" -ne 0 ]; then
        status="error($rc)"
        failed=1
        echo "  $t failed without an artifact; the end of $log:" >&2
        tail -n 20 "$log" | sed 's/^/    /' >&2
    fi
    rows+=("$(printf '%-24s %8s %12s %8s %8s  %s' "$t" "$elapsed" "${runs:-?}" "$corpus" "$crashes" "$status")")
done

echo
printf '%-24s %8s %12s %8s %8s  %s\n' target seconds runs corpus crashes status
for r in "${rows[@]}"; do
    echo "$r"
done
exit "$failed"

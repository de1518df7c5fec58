#!/usr/bin/env bash
# Builds the libFuzzer targets (Fuzz/Package.swift, every module instrumented, with
# AddressSanitizer) and runs each for FUZZ_SECONDS (default 60): first the regression inputs
# (Fuzz/Regressions/<target>: every crash ever found), then the seed corpus
# (Fuzz/Corpus/<target>, copied: the inputs a run finds stay in .build-fuzz/corpus).
# A crash stops the run, leaves the input under .build-fuzz/crashes/<target>/ and fails;
# copy it to Fuzz/Regressions/<target>/ (the swift tests replay that folder too) and fix it.
#   scripts/fuzz.sh                 both targets, 60 s each (what `make test` runs)
#   FUZZ_SECONDS=1800 scripts/fuzz.sh FuzzWireRequests
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${FUZZ_SECONDS:-60}
TARGETS=${*:-FuzzOrderValidator FuzzWireRequests}
SCRATCH=$PWD/.build-fuzz
for target in $TARGETS; do
    echo "fuzz: building $target (instrumented; the first build takes a few minutes)"
    mkdir -p "$SCRATCH"
    if ! (cd Fuzz && swift build --scratch-path "$SCRATCH" --product "$target" --sanitize=fuzzer --sanitize=address -Xswiftc -sanitize=fuzzer) >"$SCRATCH/$target-build.log" 2>&1; then
        grep -E "error" "$SCRATCH/$target-build.log" | head -20 >&2
        echo "fuzz: $target did not build (the whole log: $SCRATCH/$target-build.log)" >&2
        exit 2
    fi
    binary="$SCRATCH/debug/$target"
    regressions=(Fuzz/Regressions/$target/*)
    if [ -e "${regressions[0]}" ]; then
        echo "fuzz: $target replays ${#regressions[@]} regression inputs"
        "$binary" -timeout=20 "${regressions[@]}" >"$SCRATCH/$target-regressions.log" 2>&1 || { cat "$SCRATCH/$target-regressions.log" >&2; echo "fuzz: $target crashed on a regression input" >&2; exit 1; }
    fi
    corpus="$SCRATCH/corpus/$target"
    crashes="$SCRATCH/crashes/$target"
    mkdir -p "$corpus" "$crashes"
    cp -n Fuzz/Corpus/$target/* "$corpus/" 2>/dev/null || true
    echo "fuzz: $target for $SECONDS_EACH s"
    # -detect_leaks=0: the Swift runtime's task and metadata allocations outlive an input by
    # design; LeakSanitizer took each of them for a leak and scanned the heap after every
    # input (120 inputs/s on the wire target instead of thousands).
    if ! "$binary" -max_total_time="$SECONDS_EACH" -rss_limit_mb=4096 -timeout=20 -detect_leaks=0 -print_final_stats=1 \
        -artifact_prefix="$crashes/" "$corpus" >"$SCRATCH/$target.log" 2>&1; then
        tail -40 "$SCRATCH/$target.log" >&2
        echo "fuzz: $target CRASHED; the input is in $crashes/ — add it to Fuzz/Regressions/$target/" >&2
        exit 1
    fi
    grep -E "^#[0-9]+.*DONE|stat::number_of_executed_units" "$SCRATCH/$target.log" | tail -2 | sed "s/^/fuzz: $target: /"
done
echo "fuzz: no crash"

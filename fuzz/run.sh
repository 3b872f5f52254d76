#!/usr/bin/env bash
# Builds every libFuzzer target (fuzz/Makefile) and runs each for the given
# number of seconds (default 60) on a scratch copy of its seed corpus
# fuzz/corpus/<target>/, so the committed corpus never grows. Targets run
# in parallel, FUZZ_JOBS at a time (default: the number of CPUs).
#
# Prints one line per target:
#   fuzz_frame: ok, 1234567 runs in 60 s
#   fuzz_frame: FOUND crash after 5678 runs: fuzz/findings/fuzz_frame/crash-...
# then "fuzz: N targets, M with findings". A finding's input is kept in
# fuzz/findings/<target>/ (git-ignored) with the fuzzer's log, and its
# report is printed. Exits 1 on any finding, 2 if the build fails.
#
# Reproduce a finding: make -C fuzz && fuzz/build/<target> <input file>
set -uo pipefail
cd "$(dirname "$0")"

secs=${1:-60}
jobs=${FUZZ_JOBS:-$(nproc 2>/dev/null || echo 2)}
if ! [[ "$secs" =~ ^[0-9]+$ ]] || [ "$secs" -lt 1 ]; then
  echo "usage: bash fuzz/run.sh [seconds]" >&2
  exit 2
fi

if ! make -s all; then
  echo "fuzz: build failed"
  exit 2
fi
targets=$(make -s list)

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

run_one() {
  local t=$1 dir=$scratch/$1
  mkdir -p "$dir/corpus" "$dir/artifacts"
  if [ -d "corpus/$t" ]; then cp corpus/"$t"/* "$dir/corpus/" 2>/dev/null; fi
  # -timeout: one input taking this long is a finding (a hang);
  # -rss_limit_mb: so is running out of memory.
  ./build/"$t" -max_total_time="$secs" -timeout=25 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$dir/artifacts/" \
    "$dir/corpus" >"$dir/log" 2>&1
  echo $? >"$dir/rc"
}

# At most $jobs at a time.
running=0
for t in $targets; do
  if [ "$running" -ge "$jobs" ]; then
    wait -n
    running=$((running - 1))
  fi
  run_one "$t" &
  running=$((running + 1))
done
wait

found=0
count=0
for t in $targets; do
  dir=$scratch/$t
  count=$((count + 1))
  rc=$(cat "$dir/rc" 2>/dev/null || echo 1)
  runs=$(grep -oE '^Done [0-9]+ runs' "$dir/log" | grep -oE '[0-9]+' | tail -n1)
  if [ -z "$runs" ]; then
    # No "Done" line (the run stopped early): the last status line's count.
    runs=$(grep -oE '^#[0-9]+' "$dir/log" | tr -d '#' | tail -n1)
  fi
  runs=${runs:-0}
  artifacts=$(ls "$dir/artifacts" 2>/dev/null)
  if [ "$rc" -eq 0 ] && [ -z "$artifacts" ]; then
    echo "$t: ok, $runs runs in $secs s"
    continue
  fi
  found=$((found + 1))
  mkdir -p "findings/$t"
  cp "$dir/log" "findings/$t/log"
  kept=""
  for a in $artifacts; do
    cp "$dir/artifacts/$a" "findings/$t/$a"
    kept="$kept fuzz/findings/$t/$a"
  done
  kind=$(echo "$artifacts" | head -n1 | sed -E 's/-.*//')
  echo "---- $t report (fuzz/findings/$t/log) ----"
  grep -vE '^#[0-9]+|^INFO:|^MS:|^base64:|^0x' "$dir/log" | tail -n 60
  echo "----"
  echo "$t: FOUND ${kind:-failure (exit $rc)} after $runs runs:${kept:- no input saved}"
done
echo "fuzz: $count targets, $found with findings"
[ "$found" -eq 0 ]

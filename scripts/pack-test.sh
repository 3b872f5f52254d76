#!/usr/bin/env bash
# npm run test:pack: the npm package as a user gets it.
#
# `npm pack` (its prepack script makes a fresh prebuild with prebuildify),
# then checks of the tarball (size, and a list of what may be in it: no
# build trees, tests, fixtures, bench or fuzz), then installs it into empty
# projects with no compiler on PATH: PATH is a directory of symlinks to node,
# npm, sh and a few coreutils only, so cc, gcc, g++, make and python3 cannot
# be found and a from-source build would fail. Once with the install script
# (node-gyp-build: it finds the prebuild and builds nothing) and once with
# --ignore-scripts (the loader finds the prebuild at require time). In each
# project, require('ws-native') and an echo round trip over ws:// and wss://
# (a ws-native server with the `tls` option, a ws-native client that checks
# the server's self-signed certificate with `ca`), in a process that then
# says which .node file it mapped: it must be the project's prebuild.
#
# node-gyp-build comes from npm's cache (which `npm ci` filled) or from the
# registry (--prefer-offline).
#
# Output: one "pack-test: ok|FAIL <check>" line per check, then
# "pack-test: N passed, M failed". Exits non-zero if a check failed.
# PACK_KEEP=1 keeps the temporary directory.
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
start=$(date +%s)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/wsn-pack.XXXXXX")
if [ "${PACK_KEEP:-0}" = 1 ]; then
  echo "pack-test: keeping $tmp"
else
  trap 'rm -rf "$tmp"' EXIT
fi

# The bound on the packed size: the prebuild is ~160 KB, the sources and JS
# ~580 KB unpacked; a build tree or a fixture slipping in would pass it.
max_bytes=1000000

passed=0
failed=0
pass() {
  echo "pack-test: ok   $1"
  passed=$((passed + 1))
}
fail() {
  echo "pack-test: FAIL $1"
  failed=$((failed + 1))
}
finish() {
  echo "pack-test: $passed passed, $failed failed ($(($(date +%s) - start)) s)"
  [ "$failed" -eq 0 ]
  exit
}

# ---- pack --------------------------------------------------------------
mkdir -p "$tmp/pack"
if ! (cd "$root" && npm pack --pack-destination "$tmp/pack") >"$tmp/pack.log" 2>&1; then
  cat "$tmp/pack.log"
  fail "npm pack"
  finish
fi
tarball=$(ls "$tmp"/pack/*.tgz 2>/dev/null | head -n1)
if [ -z "$tarball" ]; then
  cat "$tmp/pack.log"
  fail "npm pack made no tarball"
  finish
fi
pass "npm pack ($(basename "$tarball"))"

size=$(stat -c %s "$tarball")
if [ "$size" -lt "$max_bytes" ]; then
  pass "tarball size $size bytes < $max_bytes"
else
  fail "tarball size $size bytes >= $max_bytes"
fi

# What may be in the package: the loader and JS, the C sources and
# binding.gyp (a platform without a prebuild builds from them), the prebuilds
# and npm's own files. Anything else (build/, test/, fixtures, bench/, fuzz/,
# examples/, scripts/, objects) fails the check.
tar tzf "$tarball" | sort >"$tmp/list.txt"
allowed='^package/(package\.json|README\.md|LICENSE[^/]*|index\.js|index\.d\.ts|wrapper\.mjs|wrapper\.d\.mts|browser\.js|binding\.gyp|lib/[a-z0-9-]+\.js|src/[a-z0-9_]+\.[ch]|prebuilds/linux-x64/ws-native\.glibc\.node)$'
stray=$(grep -vE "$allowed" "$tmp/list.txt")
missing=""
for f in package/package.json package/index.js package/lib/native.js \
  package/binding.gyp package/src/binding.c \
  package/prebuilds/linux-x64/ws-native.glibc.node; do
  grep -qxF "$f" "$tmp/list.txt" || missing="$missing $f"
done
if [ -z "$stray" ] && [ -z "$missing" ]; then
  pass "tarball list ($(wc -l <"$tmp/list.txt") files: no build tree, tests, fixtures, bench or fuzz)"
else
  [ -n "$stray" ] && echo "not allowed in the package:" && echo "$stray"
  [ -n "$missing" ] && echo "missing from the package:$missing"
  fail "tarball list"
fi

# ---- a PATH without a compiler -----------------------------------------
# The certificate for the wss:// server is made here, with the full PATH.
if ! openssl req -x509 -newkey rsa:2048 -nodes -keyout "$tmp/key.pem" \
  -out "$tmp/cert.pem" -days 1 -subj /CN=localhost \
  -addext 'subjectAltName=IP:127.0.0.1,DNS:localhost' >"$tmp/openssl.log" 2>&1; then
  cat "$tmp/openssl.log"
  fail "a self-signed certificate (openssl)"
  finish
fi

bin="$tmp/bin"
mkdir -p "$bin"
for t in node npm sh bash env cat ls mkdir rm cp mv ln chmod uname dirname \
  basename readlink realpath sed grep; do
  p=$(command -v "$t") && ln -s "$(readlink -f "$p")" "$bin/$t"
done
# npm is a script: keep its own path so that it finds its modules.
rm -f "$bin/npm" && ln -s "$(command -v npm)" "$bin/npm"
found=$(PATH="$bin" bash -c 'for t in cc gcc g++ c++ clang make python3 python; do command -v "$t"; done')
if [ -n "$found" ]; then
  echo "$found"
  fail "no compiler on the restricted PATH"
  finish
fi
pass "no compiler on the restricted PATH (cc, gcc, g++, clang, make, python3 hidden)"

# The round trip, run in each project (copied there). It prints the .node files mapped
# into the process (/proc/self/maps), which must be the project's prebuild.
cat >"$tmp/echo.js" <<'JS'
'use strict';
const fs = require('fs');
const { WebSocket, WebSocketServer } = require('ws-native');

const key = fs.readFileSync(process.argv[2], 'utf8');
const cert = fs.readFileSync(process.argv[3], 'utf8');

function echo(scheme) {
  return new Promise((resolve, reject) => {
    const wss = new WebSocketServer({
      port: 0,
      host: '127.0.0.1',
      ...(scheme === 'wss' ? { tls: { key, cert } } : {})
    });
    const timer = setTimeout(() => reject(new Error(`${scheme}: timed out`)), 10000);
    wss.on('error', reject);
    wss.on('connection', (ws) => {
      ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
    });
    wss.on('listening', () => {
      const url = `${scheme}://127.0.0.1:${wss.address().port}`;
      const ws = new WebSocket(url, scheme === 'wss' ? { ca: cert } : {});
      const text = `hello over ${scheme}://`;
      const bin = Buffer.from([0, 1, 2, 253, 254, 255]);
      const got = [];
      ws.on('error', reject);
      ws.on('open', () => {
        ws.send(text);
        ws.send(bin);
      });
      ws.on('message', (data, isBinary) => {
        got.push([data, isBinary]);
        if (got.length === 2) ws.close(1000);
      });
      ws.on('close', (code) => {
        clearTimeout(timer);
        wss.close();
        const ok =
          code === 1000 &&
          got.length === 2 &&
          !got[0][1] && got[0][0].toString() === text &&
          got[1][1] && Buffer.compare(got[1][0], bin) === 0;
        if (ok) resolve();
        else reject(new Error(`${scheme}: echo mismatch (close ${code}, ${got.length} messages)`));
      });
    });
  });
}

(async () => {
  for (const scheme of ['ws', 'wss']) {
    await echo(scheme);
    console.log(`echo ${scheme}:// ok`);
  }
  const maps = fs.readFileSync('/proc/self/maps', 'utf8').split('\n');
  const addons = new Set(maps.map((l) => l.split(/\s+/)[5]).filter((p) => p && p.endsWith('.node')));
  for (const a of addons) console.log(`addon ${a}`);
})().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
JS

# One project: install the tarball with the given npm flags, then the round
# trip. $1: a label, the rest: extra npm install flags.
try_install() {
  local label=$1
  shift
  local app="$tmp/app-$label"
  mkdir -p "$app"
  echo '{ "name": "wsn-pack-test", "version": "1.0.0", "private": true }' >"$app/package.json"
  if ! (cd "$app" && PATH="$bin" npm install --no-audit --no-fund --prefer-offline \
    --foreground-scripts "$@" "$tarball") >"$app/install.log" 2>&1; then
    cat "$app/install.log"
    fail "$label: npm install ${*:+$* }<tarball> without a compiler"
    fail "$label: echo ws://"
    fail "$label: echo wss://"
    return
  fi
  local pkg="$app/node_modules/ws-native"
  if [ -e "$pkg/build" ]; then
    cat "$app/install.log"
    fail "$label: npm install ${*:+$* }<tarball> (it made $pkg/build: a build was tried)"
  else
    pass "$label: npm install ${*:+$* }<tarball> without a compiler, no build/"
  fi
  # In the project, so that require('ws-native') resolves there.
  cp "$tmp/echo.js" "$app/echo.js"
  (cd "$app" && PATH="$bin" node echo.js "$tmp/key.pem" "$tmp/cert.pem") \
    >"$app/echo.txt" 2>&1
  local rc=$?
  local expect addons
  expect=$(readlink -f "$pkg/prebuilds/linux-x64/ws-native.glibc.node")
  addons=$(sed -n 's/^addon //p' "$app/echo.txt" | xargs -r -n1 readlink -f)
  if [ "$rc" -ne 0 ] || [ "$addons" != "$expect" ]; then
    cat "$app/echo.txt"
    echo "expected exactly $expect to be loaded, got: ${addons:-nothing}"
  fi
  for scheme in ws wss; do
    if [ "$rc" -eq 0 ] && grep -qx "echo $scheme:// ok" "$app/echo.txt" &&
      [ "$addons" = "$expect" ]; then
      pass "$label: require('ws-native'), echo over $scheme:// with the prebuild"
    else
      fail "$label: require('ws-native'), echo over $scheme:// with the prebuild"
    fi
  done
}

try_install scripts
try_install ignore-scripts --ignore-scripts

finish

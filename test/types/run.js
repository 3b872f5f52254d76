'use strict';

// npm run test:types: type-checks the programs in this folder with tsc
// (strict, --noEmit), compiles and runs the runtime/ programs (the declared
// exports exist), and runs the tsd assertions. Each program file of each
// project, for each compiler, counts as one test, and so does each runtime/
// and tsd file. Ends with "types: N passed, M failed" (read by .ci/run).
//
// Compilers: TypeScript from devDependencies (7.x), and the 5.9 that tsd
// ships (@tsd/typescript), so the declarations are checked on both lines.

const { spawnSync } = require('child_process');
const fs = require('fs');
const path = require('path');

const root = path.join(__dirname, '..', '..');
const here = path.relative(root, __dirname);
const modules = path.join(root, 'node_modules');

const compilers = [
  { name: 'tsc', bin: path.join(modules, 'typescript', 'bin', 'tsc') },
  { name: 'tsc-5.9', bin: path.join(modules, '@tsd', 'typescript', 'typescript', 'bin', 'tsc') }
];

// [tsconfig, the folder of its programs (or their list), what it shows]
const projects = [
  ['tsconfig.json', 'programs', 'ws-native by its name (exports "types")'],
  ['tsconfig.bundler.json', ['programs/esm.mts', 'programs/stream.ts'],
    'ESM with bundler resolution'],
  ['compat/tsconfig.json', 'compat', "@types/ws programs, 'ws' mapped to ws-native"],
  ['compat/tsconfig.ws.json', 'compat', 'the same programs against @types/ws']
];

function programFiles(dir) {
  return fs.readdirSync(path.join(__dirname, dir))
    .filter((f) => /\.(ts|mts|cts)$/.test(f) && !f.endsWith('.d.ts'))
    .map((f) => path.join(here, dir, f));
}

let passed = 0;
let failed = 0;

function report(ok, label, detail) {
  if (ok) passed++;
  else failed++;
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${label}`);
  if (!ok && detail) console.log(detail.replace(/^/gm, '     '));
}

for (const compiler of compilers) {
  for (const [config, dir, what] of projects) {
    const configPath = path.join(here, config);
    const run = spawnSync(process.execPath,
      [compiler.bin, '-p', configPath, '--pretty', 'false'],
      { cwd: root, encoding: 'utf8' });
    const out = `${run.stdout || ''}${run.stderr || ''}`;
    const files = Array.isArray(dir) ? dir.map((f) => path.join(here, f))
      : programFiles(dir);
    // "file(line,col): error TS...": the first line of each diagnostic.
    const byFile = new Map();
    const unowned = [];
    let current = null;
    for (const line of out.split('\n')) {
      const m = /^(\S.*?)\(\d+,\d+\): error /.exec(line);
      if (m) {
        current = path.normalize(m[1]);
        if (!byFile.has(current)) byFile.set(current, []);
        byFile.get(current).push(line);
      } else if (/^\S/.test(line)) {
        current = null;
        if (line.trim()) unowned.push(line);
      } else if (current && line.trim()) {
        byFile.get(current).push(line);
      }
    }
    for (const file of files) {
      const errors = byFile.get(path.normalize(file));
      report(!errors, `${compiler.name} ${config}: ${file}`, errors && errors.join('\n'));
    }
    // Errors outside the program files (a declaration file, the config) or
    // a compiler that failed without saying where: one more failure.
    const elsewhere = [...byFile.keys()].filter(
      (f) => !files.some((p) => path.normalize(p) === f));
    if (run.status !== 0 && (elsewhere.length || unowned.length ||
        byFile.size === 0)) {
      const detail = [...elsewhere.flatMap((f) => byFile.get(f)), ...unowned,
        run.error ? String(run.error) : ''].join('\n');
      report(false, `${compiler.name} ${config} (${what})`, detail);
    }
  }
}

// The declarations against the run time: runtime/*.mts and *.cts are
// compiled to JavaScript (in runtime/out, removed after) and run; each
// counts as one test.
{
  const outDir = path.join(__dirname, 'runtime', 'out');
  fs.rmSync(outDir, { recursive: true, force: true });
  try {
    const build = spawnSync(process.execPath,
      [compilers[0].bin, '-p', path.join(here, 'runtime'), '--pretty', 'false'],
      { cwd: root, encoding: 'utf8' });
    for (const file of programFiles('runtime')) {
      const js = path.join(outDir, path.basename(file)
        .replace(/\.mts$/, '.mjs').replace(/\.cts$/, '.cjs'));
      if (build.status !== 0 || !fs.existsSync(js)) {
        report(false, `runtime: ${file}`, `${build.stdout || ''}${build.stderr || ''}`);
        continue;
      }
      const run = spawnSync(process.execPath, [js], { cwd: root, encoding: 'utf8' });
      report(run.status === 0, `runtime: ${file}`, `${run.stdout || ''}${run.stderr || ''}`);
    }
  } finally {
    fs.rmSync(outDir, { recursive: true, force: true });
  }
}

// tsd: expectType/expectError assertions (TypeScript 5.9, Node-10
// resolution through package.json "types").
const tsdFiles = programFiles('tsd').filter((f) => f.endsWith('.test-d.ts'));
for (const file of tsdFiles) {
  const run = spawnSync(process.execPath,
    [path.join(modules, 'tsd', 'dist', 'cli.js'), '--typings', 'index.d.ts', '--files', file],
    { cwd: root, encoding: 'utf8' });
  report(run.status === 0, `tsd: ${file}`, `${run.stdout || ''}${run.stderr || ''}`);
}
if (tsdFiles.length === 0) report(false, 'tsd: no test files');

console.log(`types: ${passed} passed, ${failed} failed`);
process.exitCode = failed ? 1 : 0;

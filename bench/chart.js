#!/usr/bin/env node
'use strict';

// The benchmark at a glance: an SVG bar chart of ws-native's ratios against
// ws and against uWebSockets.js, one row per scenario metric, one bar per
// ws-native loop mode. No dependencies: the SVG is written as text.
//
//   node bench/chart.js [bench/results.md] [bench/chart.svg]
//
// run.js calls writeChart() at the end of `npm run bench` with the table it
// just measured; run by hand, this file reads the table out of a results.md
// (the same table, as run.js writes it), so a chart can be redrawn from
// any saved run.
//
// Every bar reads "how many times better ws-native is than the peer": the
// ratio itself where higher is better (msg/s, MB/s), and its inverse where
// lower is better (latency, bytes per connection), so that right of the 1×
// line always means ws-native is ahead, and a bar of 2× is as good a result
// as a bar of 0.5× is a bad one. The scale is logarithmic for that reason.

const fs = require('fs');
const path = require('path');

const WIDTH = 1000;
const LABEL_W = 290; // the row labels, left
const PANEL_GAP = 40;
const PANEL_W = (WIDTH - LABEL_W - 20 - PANEL_GAP) / 2;
const TOP = 96; // title, subtitle, legend, panel titles
const ROW_H = 30;
const BAR_H = 10;
const COLORS = ['#2f6db5', '#8fb8e8']; // first mode (thread), second (main)
const AHEAD = '#1f7a3a';
const BEHIND = '#b3261e';

/**
 * Parses the table of a results.md as run.js writes it (mdTable).
 *
 * @param {string} text the file's contents
 * @return {{ header: string[], rows: string[][], caption: string }}
 */
function parseResults(text) {
  const lines = text.split('\n');
  const start = lines.findIndex((l) => l.startsWith('| Scenario |'));
  if (start < 0) throw new Error('no "| Scenario |" table found');
  const cells = (l) => l.slice(2, -2).split(' | ').map((c) => c.replace(/\\\|/g, '|').trim());
  const header = cells(lines[start].trimEnd());
  const rows = [];
  for (let i = start + 2; i < lines.length && lines[i].startsWith('|'); i++) {
    rows.push(cells(lines[i].trimEnd()));
  }
  // The line that says how and when it was measured, for the chart's foot.
  const caption = (lines.find((l) => l.startsWith('`node bench/run.js')) || '').split('. Ratios are')[0];
  return { header, rows, caption };
}

/**
 * The chart's data from a table: per row, its label, and per peer the
 * advantage of each ws-native mode (null where the table says n/a).
 *
 * @param {{ header: string[], rows: string[][] }} table
 * @return {{ peers: { name: string, modes: string[] }[],
 *     rows: { label: string, lower: boolean, values: (number|null)[][] }[] }}
 */
function chartData({ header, rows }) {
  const peerCols = [];
  header.forEach((h, i) => {
    const m = /^vs (.+?)(?: \((.+)\))?$/.exec(h);
    if (m) peerCols.push({ col: i, name: m[1], modes: m[2] ? m[2].split(' / ') : ['ws-native'] });
  });
  if (peerCols.length === 0) throw new Error('the table has no "vs <peer>" ratio columns');
  let scenario = '';
  const out = [];
  for (const row of rows) {
    if (row[0]) scenario = row[0];
    const metric = row[1];
    const lower = /lower is better/.test(metric);
    // "S1 latency, 1 conn × 1 in flight, 32 B text" -> "S1 latency";
    // "p50 µs (lower is better)" -> "p50 µs".
    const name = scenario.split(',')[0].replace(/ \(.*$/, '');
    const label = `${name}: ${metric.replace(/ \((lower|higher) is better\)/, '')}`;
    const values = peerCols.map(({ col }) =>
      (row[col] || '').split(' / ').map((s) => {
        const r = parseFloat(s);
        if (!Number.isFinite(r) || r <= 0) return null;
        return lower ? 1 / r : r;
      }));
    out.push({ label, lower, values });
  }
  return { peers: peerCols.map(({ name, modes }) => ({ name, modes })), rows: out };
}

function esc(s) {
  return String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

// 7.66× ahead; behind reads as a fraction, 1/1.30, like the axis (a
// shortfall of 29× is easier to read as 1/29.3 than as 0.03×).
function fmtRatio(v) {
  const n = (x) => (x >= 10 ? x.toFixed(1) : x.toFixed(2));
  return v >= 1 ? `${n(v)}×` : `1/${n(1 / v)}`;
}

/**
 * Renders the chart.
 *
 * @param {{ header: string[], rows: string[][], caption?: string }} table
 * @return {string} the SVG document
 */
function renderChart(table) {
  const { peers, rows } = chartData(table);
  const modes = peers[0].modes;
  // Symmetric log scale: the largest advantage or shortfall, rounded up to
  // a power of 2 (at least 4×).
  let maxLog = 2;
  for (const r of rows) {
    for (const vs of r.values) {
      for (const v of vs) if (v !== null) maxLog = Math.max(maxLog, Math.ceil(Math.abs(Math.log2(v))));
    }
  }
  const height = TOP + rows.length * ROW_H + 70;
  const o = [];
  o.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" ` +
    'font-family="-apple-system, Segoe UI, Helvetica, Arial, sans-serif" font-size="12">');
  o.push('<title>ws-native against ws and uWebSockets.js: how many times better, per benchmark scenario</title>');
  o.push(`<rect width="${WIDTH}" height="${height}" fill="#ffffff"/>`);
  o.push('<text x="16" y="26" font-size="17" font-weight="bold" fill="#111">ws-native against ws and uWebSockets.js</text>');
  o.push('<text x="16" y="46" fill="#444">How many times better ws-native is, per scenario: the ratio for throughput, its inverse for ' +
    'latency and memory. Right of 1× (green): ws-native ahead; left (red): behind. Log scale.</text>');
  // Legend: one swatch per mode.
  modes.forEach((m, i) => {
    const x = 16 + i * 190;
    o.push(`<rect x="${x}" y="58" width="14" height="10" fill="${COLORS[i % COLORS.length]}"/>`);
    o.push(`<text x="${x + 20}" y="67" fill="#333">${m === 'ws-native' ? m : `ws-native, ${esc(m)}`}${m === 'thread' ? ' (I/O thread)' : m === 'main' ? ' (main loop)' : ''}</text>`);
  });

  // Row stripes first, so that bars and labels are drawn over them.
  rows.forEach((r, i) => {
    if (i % 2 === 0) o.push(`<rect x="8" y="${TOP + i * ROW_H}" width="${WIDTH - 16}" height="${ROW_H}" fill="#f3f5f8"/>`);
  });

  peers.forEach((peer, p) => {
    const x0 = LABEL_W + p * (PANEL_W + PANEL_GAP);
    const mid = x0 + PANEL_W / 2;
    const scale = (v) => mid + (Math.log2(v) / maxLog) * (PANEL_W / 2);
    const y0 = TOP - 8;
    const y1 = TOP + rows.length * ROW_H;
    o.push(`<text x="${mid}" y="${TOP - 14}" text-anchor="middle" font-weight="bold" fill="#111">against ${esc(peer.name)}</text>`);
    // Grid: a line per power of 2 (labels every other one when crowded).
    for (let k = -maxLog; k <= maxLog; k++) {
      const x = scale(2 ** k);
      o.push(`<line x1="${x.toFixed(1)}" y1="${y0}" x2="${x.toFixed(1)}" y2="${y1}" stroke="${k === 0 ? '#333' : '#e3e3e3'}" stroke-width="${k === 0 ? 1.5 : 1}"/>`);
      if (maxLog <= 4 || k % 2 === 0) {
        const t = k >= 0 ? `${2 ** k}×` : `1/${2 ** -k}`;
        o.push(`<text x="${x.toFixed(1)}" y="${y1 + 14}" text-anchor="middle" font-size="10" fill="#666">${t}</text>`);
      }
    }
    rows.forEach((r, i) => {
      const yRow = TOP + i * ROW_H;
      r.values[p].forEach((v, m) => {
        const y = yRow + 4 + m * (BAR_H + 2);
        if (v === null) {
          o.push(`<text x="${mid + 4}" y="${y + BAR_H - 1}" font-size="10" fill="#999">n/a</text>`);
          return;
        }
        const x = scale(Math.min(Math.max(v, 2 ** -maxLog), 2 ** maxLog));
        const left = Math.min(x, mid);
        const w = Math.max(Math.abs(x - mid), 1);
        o.push(`<rect x="${left.toFixed(1)}" y="${y}" width="${w.toFixed(1)}" height="${BAR_H}" fill="${COLORS[m % COLORS.length]}">` +
          `<title>${esc(r.label)}, ${esc(peer.modes[m] || '')}: ${fmtRatio(v)} ${v >= 1 ? 'better' : 'as good'} than ${esc(peer.name)}${r.lower ? ' (lower is better: the inverse ratio)' : ''}</title></rect>`);
        const tx = v >= 1 ? x + 4 : x - 4;
        o.push(`<text x="${tx.toFixed(1)}" y="${y + BAR_H - 1}" font-size="10" text-anchor="${v >= 1 ? 'start' : 'end'}" ` +
          `fill="${v >= 1 ? AHEAD : BEHIND}">${fmtRatio(v)}</text>`);
      });
    });
  });

  rows.forEach((r, i) => {
    o.push(`<text x="16" y="${TOP + i * ROW_H + 19}" fill="#222">${esc(r.label)}</text>`);
  });

  // How and when it was measured (results.md's first line, up to the ratios).
  const foot = (table.caption || '').replace(/`/g, '');
  if (foot) o.push(`<text x="16" y="${height - 26}" font-size="10" fill="#666">${esc(foot)}.</text>`);
  o.push(`<text x="16" y="${height - 12}" font-size="10" fill="#666">` +
    'Scenarios: bench/README.md. Figures: bench/results.md. Redraw from a saved run: node bench/chart.js bench/results.md</text>');
  o.push('</svg>');
  return o.join('\n') + '\n';
}

/**
 * Writes the chart of `table` to `file`.
 *
 * @param {{ header: string[], rows: string[][], caption?: string }} table
 * @param {string} file
 */
function writeChart(table, file) {
  fs.writeFileSync(file, renderChart(table));
}

module.exports = { parseResults, chartData, renderChart, writeChart };

if (require.main === module) {
  const input = process.argv[2] || path.join(__dirname, 'results.md');
  const output = process.argv[3] || path.join(__dirname, 'chart.svg');
  writeChart(parseResults(fs.readFileSync(input, 'utf8')), output);
  process.stdout.write(`wrote ${path.relative(process.cwd(), output)}\n`);
}

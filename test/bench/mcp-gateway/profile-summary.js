#!/usr/bin/env node
// Summarises V8 .cpuprofile files (node --cpu-prof): self time by package and by function.
//
// Usage: node test/bench/mcp-gateway/profile-summary.js <file-or-dir>... [--top N]
// A node's self time is its hit count × the sampling interval; a function is named by its file
// (node_modules/<package> for dependencies, node:internal for Node itself, the repo path for ours).
// Written here rather than taken from npm: the few lines below read the profile format directly,
// where the profile viewers on npm are interactive (flame graphs), not text for a report.
'use strict';
const { readdirSync, readFileSync, statSync } = require('node:fs');
const { join, resolve } = require('node:path');

const REPO = resolve(__dirname, '..', '..', '..');

/** Where a frame's code comes from: an npm package, a workspace of this repo, Node itself, or V8. */
function origin(url, functionName) {
  if (!url) return functionName.startsWith('(') ? functionName : '(native/V8)';
  if (url.startsWith('node:')) return 'node (core)';
  const path = url.replace(/^file:\/\//, '');
  const nm = path.lastIndexOf('/node_modules/');
  if (nm >= 0) {
    const rest = path.slice(nm + '/node_modules/'.length).split('/');
    return rest[0].startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0];
  }
  if (path.startsWith(REPO)) {
    const rel = path.slice(REPO.length + 1).split('/');
    return rel[0] === 'services' || rel[0] === 'libs' ? `${rel[0]}/${rel[1]}` : rel[0];
  }
  return path;
}

function summarise(file) {
  const profile = JSON.parse(readFileSync(file, 'utf8'));
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  // Hits per node from samples (hitCount is not always filled); every sample is one interval.
  const hits = new Map();
  for (const id of profile.samples ?? []) hits.set(id, (hits.get(id) ?? 0) + 1);
  const totalUs = profile.endTime - profile.startTime;
  const samples = profile.samples?.length ?? 0;
  const usPerSample = samples > 0 ? totalUs / samples : 0;
  const byPackage = new Map();
  const byFunction = new Map();
  let idleUs = 0;
  let busyUs = 0;
  for (const [id, count] of hits) {
    const node = byId.get(id);
    const { functionName, url, lineNumber } = node.callFrame;
    const us = count * usPerSample;
    if (functionName === '(idle)' || functionName === '(program)') {
      if (functionName === '(idle)') idleUs += us;
      else busyUs += us;
      if (functionName === '(idle)') continue;
    } else busyUs += us;
    const pkg = origin(url, functionName);
    byPackage.set(pkg, (byPackage.get(pkg) ?? 0) + us);
    const short = url ? url.replace(/^file:\/\//, '').replace(/.*\/node_modules\//, '').replace(`${REPO}/`, '') : '';
    const key = `${functionName || '(anonymous)'} ${short}${url ? `:${lineNumber + 1}` : ''}`;
    byFunction.set(key, (byFunction.get(key) ?? 0) + us);
  }
  return { file, totalUs, idleUs, busyUs, byPackage, byFunction };
}

function report(s, top = 25) {
  const ms = (us) => (us / 1000).toFixed(0);
  const pct = (us) => ((100 * us) / s.busyUs).toFixed(1);
  const out = [];
  out.push(`### ${s.file}`);
  out.push('');
  out.push(`profiled ${ms(s.totalUs)} ms, busy ${ms(s.busyUs)} ms (idle ${ms(s.idleUs)} ms); shares are of busy time`);
  out.push('');
  out.push('| self time by package | ms | % |');
  out.push('|---|---:|---:|');
  for (const [k, us] of [...s.byPackage].sort((a, b) => b[1] - a[1]).slice(0, top)) out.push(`| ${k} | ${ms(us)} | ${pct(us)} |`);
  out.push('');
  out.push('| self time by function | ms | % |');
  out.push('|---|---:|---:|');
  for (const [k, us] of [...s.byFunction].sort((a, b) => b[1] - a[1]).slice(0, top)) out.push(`| ${k.replace(/\|/g, '\\|')} | ${ms(us)} | ${pct(us)} |`);
  return out.join('\n');
}

function profilesIn(path) {
  if (!statSync(path).isDirectory()) return [path];
  return readdirSync(path, { recursive: true })
    .filter((f) => String(f).endsWith('.cpuprofile'))
    .map((f) => join(path, String(f)))
    .sort();
}

module.exports = { summarise, report, profilesIn };

if (require.main === module) {
  const args = process.argv.slice(2);
  let top = 25;
  const paths = [];
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--top') top = Number(args[++i]);
    else paths.push(args[i]);
  }
  if (paths.length === 0) {
    console.error('Usage: node test/bench/mcp-gateway/profile-summary.js <file-or-dir>... [--top N]');
    process.exit(2);
  }
  for (const p of paths) for (const f of profilesIn(p)) console.log(`${report(summarise(f), top)}\n`);
}

#!/usr/bin/env node
// Generates TypeScript from proto/ with buf + ts-proto. With --check, generates into a
// temporary directory and fails when the committed src/gen differs (drift).
'use strict';
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const bin = (name) => path.resolve(root, '../../node_modules/.bin', name);
const check = process.argv.includes('--check');

function run(args, cwd) {
  execFileSync(bin('buf'), args, { cwd, stdio: ['ignore', 'inherit', 'inherit'] });
}

function listFiles(dir, base = dir) {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const full = path.join(dir, e.name);
    return e.isDirectory() ? listFiles(full, base) : [path.relative(base, full)];
  });
}

run(['lint'], root);
if (!check) {
  fs.rmSync(path.join(root, 'src/gen'), { recursive: true, force: true });
  run(['generate'], root);
  console.log('proto: generated libs/contracts/src/gen');
  process.exit(0);
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ziggie-proto-'));
try {
  run(['generate', '-o', tmp], root);
  const fresh = path.join(tmp, 'src/gen');
  const committed = path.join(root, 'src/gen');
  const a = listFiles(fresh).sort();
  const b = listFiles(committed).sort();
  const drift = new Set([...a.filter((f) => !b.includes(f)), ...b.filter((f) => !a.includes(f))]);
  for (const f of a.filter((x) => b.includes(x))) {
    if (!fs.readFileSync(path.join(fresh, f)).equals(fs.readFileSync(path.join(committed, f)))) drift.add(f);
  }
  if (drift.size > 0) {
    console.error(`proto: generated code drifted from proto/ in: ${[...drift].join(', ')}`);
    console.error('proto: run `npm run proto:gen` and commit the result');
    process.exit(1);
  }
  console.log(`proto: ${a.length} generated files match proto/`);
} finally {
  fs.rmSync(tmp, { recursive: true, force: true });
}

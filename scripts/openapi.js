#!/usr/bin/env node
// Writes the gateway's OpenAPI 3.1 document (built from the compiled controllers, so run
// `npm run build` first) to docs/openapi.json. With --check, fails when the committed file
// differs from what the code serves (drift), printing the operations that differ.
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const target = path.join(root, 'docs/openapi.json');
const check = process.argv.includes('--check');

const { gatewayOpenApi } = require(path.join(root, 'services/gateway/dist/api.js'));
const generated = `${JSON.stringify(gatewayOpenApi(), null, 2)}\n`;

if (!check) {
  fs.writeFileSync(target, generated);
  console.log(`openapi: wrote ${path.relative(root, target)}`);
  process.exit(0);
}

const committed = fs.existsSync(target) ? fs.readFileSync(target, 'utf8') : '';
if (committed === generated) {
  console.log('openapi: docs/openapi.json matches the code');
  process.exit(0);
}

function operations(text) {
  const ops = new Map();
  try {
    const doc = JSON.parse(text);
    for (const [p, item] of Object.entries(doc.paths ?? {})) {
      for (const [m, op] of Object.entries(item)) ops.set(`${m.toUpperCase()} ${p}`, JSON.stringify(op));
    }
  } catch {
    // an unreadable committed file differs everywhere
  }
  return ops;
}
const before = operations(committed);
const after = operations(generated);
const changed = [...new Set([...before.keys(), ...after.keys()])].filter((k) => before.get(k) !== after.get(k)).sort();
console.error('openapi: docs/openapi.json is out of date with the code. Run `npm run openapi:gen` and commit it.');
for (const k of changed) console.error(`  ${!before.has(k) ? '+' : !after.has(k) ? '-' : '~'} ${k}`);
if (changed.length === 0) console.error('  (top-level fields differ)');
process.exit(1);

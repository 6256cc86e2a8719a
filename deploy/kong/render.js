#!/usr/bin/env node
'use strict';
// Fills in the decK environment placeholders of a declarative file, ${{ env "DECK_NAME" }}, the way
// decK 1.12+ does, for tools that do not: Debian's deck 1.4.0 and Kong's own DB-less loader.
//
//   DECK_JWT_SECRET="$(cat .ziggie/jwt-secret)" DECK_REDIS_HOST=127.0.0.1 \
//     node deploy/kong/render.js [deploy/kong/kong.yaml] [-o out.yaml]
//
// Every placeholder must have a non-empty DECK_* variable; otherwise nothing is written and the
// exit code is 1. Values are written as quoted YAML strings. The output holds the secret, so a
// file written with -o is mode 0600.
const fs = require('node:fs');
const path = require('node:path');

const PLACEHOLDER = /\$\{\{\s*env\s+"([^"]*)"\s*\}\}/g;

function parseArgs(argv) {
  const args = { input: path.join(__dirname, 'kong.yaml'), output: undefined };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '-o' || argv[i] === '--output') args.output = argv[++i];
    else if (argv[i] === '-h' || argv[i] === '--help') args.help = true;
    else args.input = argv[i];
  }
  return args;
}

function render(text, env) {
  const missing = new Set();
  const out = text.replace(PLACEHOLDER, (_, name) => {
    if (!/^DECK_[A-Za-z0-9_]+$/.test(name)) {
      missing.add(`${name} (placeholders must name a DECK_* variable)`);
      return '';
    }
    const value = env[name];
    if (value === undefined || value.trim() === '') {
      missing.add(name);
      return '';
    }
    // A JSON string is a valid double-quoted YAML scalar.
    return JSON.stringify(value.trim());
  });
  return { out, missing: [...missing] };
}

function main() {
  const args = parseArgs(process.argv.slice(2));
  if (args.help) {
    process.stdout.write('usage: node deploy/kong/render.js [input.yaml] [-o output.yaml]\n');
    return 0;
  }
  const { out, missing } = render(fs.readFileSync(args.input, 'utf8'), process.env);
  if (missing.length > 0) {
    process.stderr.write(`render: set ${missing.join(', ')}\n`);
    return 1;
  }
  if (args.output) {
    fs.writeFileSync(args.output, out, { mode: 0o600 });
    fs.chmodSync(args.output, 0o600);
  } else {
    process.stdout.write(out);
  }
  return 0;
}

if (require.main === module) process.exitCode = main();

module.exports = { render };

#!/usr/bin/env node
// User-supplied regular expressions: JavaScript's backtracking RegExp beside RE2 (re2js, what the
// services run), on a quality gate pattern with catastrophic backtracking and on a plain one.
// A benchmark, not a test: it prints figures side by side and asserts nothing.
// Usage: npm run bench:patterns   (after npm run build)
'use strict';
const { performance } = require('node:perf_hooks');
const { compileUserPattern, globMatches } = require('../../../libs/contracts/dist/patterns.js');

/** Median of a few runs of fn, in ms. */
function ms(fn, runs = 5) {
  const samples = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    fn();
    samples.push(performance.now() - t0);
  }
  return samples.sort((a, b) => a - b)[Math.floor(runs / 2)];
}
const fmt = (v) => (v >= 100 ? `${v.toFixed(0)} ms` : `${v.toFixed(2)} ms`);

// Warm both engines up (JIT, RE2 compile cache) so the first row is not the compile.
compileUserPattern('(a+)+$', { caseInsensitive: true }).test('aaa!');
compileUserPattern('secret', { caseInsensitive: true }).test('aaa!');

console.log('\n(a+)+$ against "a"×n + "!" (the probe\'s gate pattern; no match)\n');
console.log('| n | JavaScript RegExp | RE2 (re2js) |');
console.log('|---:|---:|---:|');
for (const n of [20, 24, 26, 28]) {
  const text = `${'a'.repeat(n)}!`;
  const js = ms(() => new RegExp('(a+)+$', 'i').exec(text), n >= 26 ? 1 : 3);
  const re2 = ms(() => compileUserPattern('(a+)+$', { caseInsensitive: true }).firstMatch(text));
  console.log(`| ${n} | ${fmt(js)} | ${fmt(re2)} |`);
}
for (const n of [10_000, 100_000, 1_000_000]) {
  const text = `${'a'.repeat(n)}!`;
  const re2 = ms(() => compileUserPattern('(a+)+$', { caseInsensitive: true }).firstMatch(text));
  console.log(`| ${n.toLocaleString('en')} | (would not finish) | ${fmt(re2)} |`);
}

console.log('\nA plain pattern ("secret", case-insensitive) over text of n characters, no match\n');
console.log('| n | JavaScript RegExp | RE2 (re2js) |');
console.log('|---:|---:|---:|');
for (const n of [10_000, 100_000, 1_000_000]) {
  const text = 'lorem ipsum '.repeat(Math.ceil(n / 12)).slice(0, n);
  const js = ms(() => /secret/i.exec(text));
  const re2 = ms(() => compileUserPattern('secret', { caseInsensitive: true }).firstMatch(text));
  console.log(`| ${n.toLocaleString('en')} | ${fmt(js)} | ${fmt(re2)} |`);
}

console.log('\nPolicy glob "*a*a*a*a*a*a*a*a*b" against "a"×n (no match)\n');
console.log('| n | glob → JavaScript RegExp (the former matcher) | globMatches |');
console.log('|---:|---:|---:|');
const glob = `${'*a'.repeat(8)}*b`;
const asRegExp = new RegExp(`^${glob.split('*').join('.*')}$`);
for (const n of [20, 30, 40]) {
  const value = 'a'.repeat(n);
  const js = ms(() => asRegExp.test(value), 1);
  const linear = ms(() => globMatches(glob, value));
  console.log(`| ${n} | ${fmt(js)} | ${fmt(linear)} |`);
}

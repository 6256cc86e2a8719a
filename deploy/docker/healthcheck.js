'use strict';
// HEALTHCHECK of the service images (copied to /app/healthcheck.js): GET /healthz on the
// service's HTTP port. Exit 0 on 200, 1 otherwise. Plain node, no dependencies beyond the
// port table of libs/platform, so a check costs a few milliseconds of CPU.
const http = require('node:http');
const path = require('node:path');

function fail(reason) {
  process.stderr.write(`healthcheck: ${reason}\n`);
  process.exit(1);
}

function port() {
  if (process.env.HTTP_PORT) return Number(process.env.HTTP_PORT);
  const service = process.env.ZIGGIE_SERVICE;
  const { DefaultPorts } = require(path.join(__dirname, 'libs', 'platform', 'dist', 'config', 'services.js'));
  const ports = service ? DefaultPorts[service] : undefined;
  if (!ports) fail(`unknown ZIGGIE_SERVICE ${JSON.stringify(service)} and no HTTP_PORT`);
  return ports.http;
}

// A wildcard bind address is reachable on loopback; a specific one only on itself.
function host() {
  const h = (process.env.HTTP_HOST || '').trim();
  if (!h || h === '0.0.0.0' || h === '::' || h === '[::]') return '127.0.0.1';
  return h.replace(/^\[(.*)\]$/, '$1');
}

const req = http.get({ host: host(), port: port(), path: '/healthz', timeout: 4000 }, (res) => {
  res.resume();
  if (res.statusCode === 200) process.exit(0);
  fail(`/healthz answered ${res.statusCode}`);
});
req.on('timeout', () => req.destroy(new Error('timed out')));
req.on('error', (err) => fail(err.message));

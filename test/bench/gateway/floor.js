#!/usr/bin/env node
// The floor of the gateway benchmark's route: the same answer with nothing around it. A bare
// node:http server that, for GET /v1/agents/summary, makes the same gRPC call to agent-registry
// with the same generated client and writes its JSON. No framework, auth, limits, logs, metrics
// or tracing: what is left of a request's CPU when all of those cost nothing.
// Env: PORT, AGENT_REGISTRY_GRPC_ADDR (as the stack gives the gateway).
'use strict';
const { createServer } = require('node:http');
const grpc = require('@grpc/grpc-js');
const { pb } = require('../../../libs/contracts/dist');

const registry = new pb.AgentRegistryClient(process.env.AGENT_REGISTRY_GRPC_ADDR, grpc.credentials.createInsecure());

createServer((req, res) => {
  if (req.url !== '/v1/agents/summary') {
    res.writeHead(404).end();
    return;
  }
  registry.getHierarchySummary({ workspaces: ['*'] }, new grpc.Metadata(), { deadline: Date.now() + 10_000 }, (err, summary) => {
    if (err) {
      res.writeHead(502, { 'content-type': 'application/json' }).end(JSON.stringify({ code: 'UPSTREAM', message: err.message }));
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json; charset=utf-8' }).end(JSON.stringify(summary));
  });
}).listen(Number(process.env.PORT), '127.0.0.1');
process.on('SIGTERM', () => process.exit(0));

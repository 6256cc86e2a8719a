#!/usr/bin/env node
// A tiny MCP server over stdio with 100 tools, tool_000 … tool_099, each taking {text: string}
// and answering it back. Used by run.js to measure tools/list through the gateway's catalog.
// Usage: node test/bench/mcp-gateway/hundred-tools-server.js   (speaks MCP on stdin/stdout)
'use strict';
const { createRequire } = require('node:module');
const { join } = require('node:path');

const requireFromRepo = createRequire(join(__dirname, '..', '..', '..', 'package.json'));
const { Server } = requireFromRepo('@modelcontextprotocol/sdk/server/index.js');
const { StdioServerTransport } = requireFromRepo('@modelcontextprotocol/sdk/server/stdio.js');
const { ListToolsRequestSchema, CallToolRequestSchema } = requireFromRepo('@modelcontextprotocol/sdk/types.js');

const TOOL_COUNT = 100;
const tools = Array.from({ length: TOOL_COUNT }, (_, i) => ({
  name: `tool_${String(i).padStart(3, '0')}`,
  description: `Benchmark tool number ${i}: answers its text back.`,
  inputSchema: {
    type: 'object',
    properties: { text: { type: 'string', description: 'Text to answer back' } },
    required: ['text'],
  },
}));
const names = new Set(tools.map((t) => t.name));

const server = new Server({ name: 'hundred-tools', version: '1.0.0' }, { capabilities: { tools: {} } });
server.setRequestHandler(ListToolsRequestSchema, async () => ({ tools }));
server.setRequestHandler(CallToolRequestSchema, async (req) => {
  const { name, arguments: args } = req.params;
  if (!names.has(name)) return { isError: true, content: [{ type: 'text', text: `unknown tool ${name}` }] };
  return { content: [{ type: 'text', text: `${name}: ${String(args?.text ?? '')}` }] };
});

server.connect(new StdioServerTransport()).catch((err) => {
  process.stderr.write(`hundred-tools-server: ${err?.stack ?? err}\n`);
  process.exit(1);
});
// The parent closing our stdin is the signal to go.
process.stdin.on('end', () => process.exit(0));

import { Type } from '@nestjs/common';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildOpenApi, HealthController, MetricsController } from '@ziggie/platform';
import { AgentsController } from './agents.controller';
import { AuditController } from './audit/audit.controller';
import { ConsoleController } from './console.controller';
import { EventsController } from './events.controller';
import { GovernanceController } from './governance.controller';
import { McpController } from './mcp.controller';
import { OpenApiController } from './openapi.controller';
import { OverviewController } from './overview.controller';
import { TasksController } from './tasks.controller';
import { WorkspacesController } from './workspaces.controller';

/** The controllers of the public REST API under /v1. */
export const API_CONTROLLERS: Type[] = [TasksController, AgentsController, WorkspacesController, McpController, GovernanceController, EventsController, OverviewController];

/** Every route the gateway serves: the API (the audit log comes with its module), the docs, the console, health and metrics. */
export const SERVED_CONTROLLERS: Type[] = [HealthController, MetricsController, OpenApiController, ConsoleController, ...API_CONTROLLERS, AuditController];

// dist/api.js and src/api.ts both sit one level below the package.
const VERSION = (JSON.parse(readFileSync(join(__dirname, '..', 'package.json'), 'utf8')) as { version: string }).version;

/** The gateway's OpenAPI 3.1 document, built from the decorators that route and validate requests. */
export function gatewayOpenApi(): Record<string, unknown> {
  return buildOpenApi(SERVED_CONTROLLERS, {
    title: 'Ziggie Command Center API',
    version: VERSION,
    description:
      'Tasks, blueprints, policies, agents, workspaces, pools, MCP tools and the audit log. ' +
      'Authenticate with a JWT bearer token; errors are RFC 9457 problem+json with a stable `code`; ' +
      'lists take `limit` and `cursor` and answer `{ items, total, nextCursor? }`; every response echoes `X-Request-ID`.',
  });
}

/**
 * Stable error codes. REST answers problem+json with `code`; gRPC answers the mapped
 * status with the code in the `ziggie-error-code` trailer. Codes never change meaning.
 */
export const ErrorCodes = {
  VALIDATION_FAILED: { http: 400, grpc: 3, title: 'Request validation failed' },
  TASK_CYCLE: { http: 400, grpc: 3, title: 'Plan has a dependency cycle' },
  TASK_UNKNOWN_CAPABILITY: { http: 400, grpc: 3, title: 'Plan names an unknown capability' },
  TASK_UNKNOWN_DEPENDENCY: { http: 400, grpc: 3, title: 'Plan step depends on an unknown step' },
  TASK_DUPLICATE_STEP: { http: 400, grpc: 3, title: 'Plan has two steps with the same id' },
  TASK_INVALID_PLAN: { http: 400, grpc: 3, title: 'Plan is invalid' },
  TASK_UNKNOWN_WORKSPACE: { http: 400, grpc: 3, title: 'Unknown workspace' },
  TASK_UNKNOWN_AGENT: { http: 400, grpc: 3, title: 'Plan names an agent that does not exist' },
  TASK_STEP_FAILED: { http: 409, grpc: 9, title: 'A step of the task failed' },
  TASK_CANCELLED: { http: 409, grpc: 9, title: 'Task was cancelled' },
  STEP_DELIVERY_EXHAUSTED: { http: 500, grpc: 13, title: 'Step could not be delivered to an agent' },
  TASK_DEPTH_EXCEEDED: { http: 400, grpc: 3, title: 'Delegation is nested too deep' },
  TASK_BUDGET_EXCEEDED: { http: 403, grpc: 7, title: 'Task exceeds a policy budget' },
  TASK_OUTPUT_INVALID: { http: 409, grpc: 9, title: 'Task output does not match the blueprint output schema' },
  TASK_NOT_RUNNING: { http: 409, grpc: 9, title: 'Task is not running' },
  STEP_NOT_FOUND: { http: 404, grpc: 5, title: 'Step not found' },
  STEP_NOT_WAITING_APPROVAL: { http: 409, grpc: 9, title: 'Step is not waiting for approval' },
  STEP_TIMEOUT: { http: 504, grpc: 4, title: 'Step timed out' },
  STEP_REJECTED: { http: 409, grpc: 9, title: 'Step was rejected at its approval gate' },
  QUALITY_GATE_FAILED: { http: 409, grpc: 9, title: 'Step output failed its quality gate' },
  BLUEPRINT_NOT_FOUND: { http: 404, grpc: 5, title: 'Blueprint not found' },
  BLUEPRINT_EXISTS: { http: 409, grpc: 6, title: 'Blueprint version already exists' },
  BLUEPRINT_INVALID: { http: 400, grpc: 3, title: 'Blueprint is invalid' },
  BLUEPRINT_INPUT_INVALID: { http: 400, grpc: 3, title: 'Blueprint inputs do not match its input schema' },
  BLUEPRINT_BUILTIN: { http: 409, grpc: 9, title: 'Built-in blueprints cannot be deleted' },
  POLICY_NOT_FOUND: { http: 404, grpc: 5, title: 'Policy not found' },
  WORKSPACE_NOT_FOUND: { http: 404, grpc: 5, title: 'Workspace not found' },
  WORKSPACE_EXISTS: { http: 409, grpc: 6, title: 'Workspace already exists' },
  WORKSPACE_CYCLE: { http: 400, grpc: 3, title: 'Workspace dependencies would form a cycle' },
  WORKSPACE_IN_USE: { http: 409, grpc: 9, title: 'Workspace is still depended on or holds leases' },
  PORT_RANGE_OVERLAP: { http: 409, grpc: 9, title: 'Port range overlaps another workspace' },
  PORT_EXHAUSTED: { http: 409, grpc: 8, title: 'No free port in the workspace range' },
  PORT_UNAVAILABLE: { http: 409, grpc: 9, title: 'Port is leased or outside the workspace range' },
  PORT_LEASE_NOT_FOUND: { http: 404, grpc: 5, title: 'Port lease not found' },
  POOL_NOT_FOUND: { http: 404, grpc: 5, title: 'Pool not found' },
  POOL_EXHAUSTED: { http: 409, grpc: 8, title: 'Pool has no free capacity' },
  POOL_NOT_SCALABLE: { http: 409, grpc: 9, title: 'Pool has fixed endpoints and cannot be scaled' },
  POOL_SCALE_INVALID: { http: 400, grpc: 3, title: 'Pool scale request is invalid' },
  POOL_BACKEND_UNAVAILABLE: { http: 503, grpc: 14, title: 'Kubernetes API unavailable for the pool' },
  POOL_SCALE_TIMEOUT: { http: 504, grpc: 4, title: 'Pool had no ready replica in time' },
  LEASE_NOT_FOUND: { http: 404, grpc: 5, title: 'Lease not found or expired' },
  AUDIT_UNAVAILABLE: { http: 503, grpc: 14, title: 'Audit log unavailable' },
  PAYLOAD_TOO_LARGE: { http: 413, grpc: 8, title: 'Request body too large' },
  REQUEST_HEADERS_TOO_LARGE: { http: 431, grpc: 8, title: 'Request line or headers too large' },
  REQUEST_MALFORMED: { http: 400, grpc: 3, title: 'Malformed HTTP request' },
  UNSUPPORTED_MEDIA_TYPE: { http: 415, grpc: 3, title: 'Request body is not JSON' },
  LLM_NOT_CONFIGURED: { http: 503, grpc: 9, title: 'No LLM is configured' },
  TASK_NOT_FOUND: { http: 404, grpc: 5, title: 'Task not found' },
  NOT_FOUND: { http: 404, grpc: 5, title: 'Not found' },
  AUTH_MISSING_TOKEN: { http: 401, grpc: 16, title: 'Authentication required' },
  AUTH_INVALID_TOKEN: { http: 401, grpc: 16, title: 'Invalid token' },
  AUTH_FORBIDDEN: { http: 403, grpc: 7, title: 'Permission denied' },
  AUTH_WORKSPACE_FORBIDDEN: { http: 403, grpc: 7, title: 'Workspace not allowed for this token' },
  AGENT_UNAVAILABLE: { http: 503, grpc: 14, title: 'No live agent for the capability' },
  TOOL_NOT_FOUND: { http: 404, grpc: 5, title: 'Tool not found' },
  TOOL_RATE_LIMITED: { http: 429, grpc: 8, title: 'Tool rate limit exceeded' },
  TOOL_CONCURRENCY_LIMITED: { http: 429, grpc: 8, title: 'Too many concurrent calls to the tool' },
  TOOL_INVALID_ARGUMENTS: { http: 400, grpc: 3, title: 'Tool arguments do not match its input schema' },
  TOOL_QUARANTINED: { http: 409, grpc: 9, title: 'Tool definition changed and awaits approval' },
  TOOL_FORBIDDEN: { http: 403, grpc: 7, title: 'Tool not allowed for this caller' },
  POLICY_DENIED: { http: 403, grpc: 7, title: 'Denied by policy' },
  PIN_NOT_FOUND: { http: 404, grpc: 5, title: 'No pending tool definition with that name and hash' },
  SERVER_NOT_FOUND: { http: 404, grpc: 5, title: 'MCP server not found' },
  RESOURCE_NOT_FOUND: { http: 404, grpc: 5, title: 'MCP resource not found' },
  PROMPT_NOT_FOUND: { http: 404, grpc: 5, title: 'MCP prompt not found' },
  PROMPT_INVALID_ARGUMENTS: { http: 400, grpc: 3, title: 'Prompt arguments do not match its declared arguments' },
  SERVER_EXISTS: { http: 409, grpc: 6, title: 'MCP server already exists' },
  URL_NOT_ALLOWED: { http: 400, grpc: 3, title: 'URL points to a range that is not allowed' },
  UPSTREAM_RESPONSE_TOO_LARGE: { http: 502, grpc: 13, title: 'Upstream response exceeds the size limit' },
  MCP_SESSION_NOT_FOUND: { http: 404, grpc: 5, title: 'MCP session not found' },
  TOOL_CALL_FAILED: { http: 502, grpc: 13, title: 'Tool call failed' },
  UPSTREAM_UNAVAILABLE: { http: 503, grpc: 14, title: 'Upstream unavailable' },
  UPSTREAM_CIRCUIT_OPEN: { http: 503, grpc: 14, title: 'Upstream circuit open' },
  UPSTREAM_TIMEOUT: { http: 504, grpc: 4, title: 'Upstream timed out' },
  RATE_LIMITED: { http: 429, grpc: 8, title: 'Rate limit exceeded' },
  SERVICE_UNAVAILABLE: { http: 503, grpc: 14, title: 'Service unavailable' },
  UNIMPLEMENTED: { http: 501, grpc: 12, title: 'Not implemented yet' },
  INTERNAL: { http: 500, grpc: 13, title: 'Internal error' },
} as const;

export type ErrorCode = keyof typeof ErrorCodes;

export const GRPC_ERROR_CODE_KEY = 'ziggie-error-code';

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.prototype.hasOwnProperty.call(ErrorCodes, value);
}

/**
 * Refusals for capacity: the work was not done because something was full, not because it
 * failed. A step refused with one of these waits (no earlier than the refusal's
 * `retryAfterSeconds`) and is dispatched again without using one of its retries.
 */
export const CAPACITY_ERROR_CODES: readonly ErrorCode[] = ['TOOL_RATE_LIMITED', 'TOOL_CONCURRENCY_LIMITED', 'RATE_LIMITED'];

export function isCapacityRefusal(code: string): boolean {
  return (CAPACITY_ERROR_CODES as readonly string[]).includes(code);
}

/** The one error type services throw on purpose; anything else is reported as INTERNAL. */
export class ZiggieError extends Error {
  constructor(
    readonly code: ErrorCode,
    message?: string,
    readonly extras: Record<string, unknown> = {},
  ) {
    super(message ?? ErrorCodes[code].title);
    this.name = 'ZiggieError';
  }

  get httpStatus(): number {
    return ErrorCodes[this.code].http;
  }

  get grpcStatus(): number {
    return ErrorCodes[this.code].grpc;
  }
}

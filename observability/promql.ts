/**
 * PromQL building blocks shared by the dashboards and the alert rules, so a selector (which
 * services, which status codes are errors, which routes are probes) is defined once.
 */
import { SERVICES } from './services';

/** Every Ziggie target: the `service` label is set by the scrape config (local) or the ServiceMonitor (chart). */
export const ALL_SERVICES = `service=~"${SERVICES.join('|')}"`;
/** Probes and scrapes are not API traffic. */
export const NOT_PROBES = 'route!~"/metrics|/healthz|/readyz"';
/** HTTP answers that count as errors of the service (4xx are the caller's). */
export const HTTP_ERRORS = 'status=~"5.."';
/** gRPC codes that count as errors of the server; the rest (NOT_FOUND, INVALID_ARGUMENT, ...) are the caller's. */
export const GRPC_ERRORS = 'code=~"UNKNOWN|DEADLINE_EXCEEDED|UNIMPLEMENTED|INTERNAL|UNAVAILABLE|DATA_LOSS"';
/** Step outcomes that count as failures in the runtime. */
export const STEP_FAILURES = 'status!="succeeded"';

/** MCP outcomes that count as failed calls; `limited` and `invalid_arguments` are refused before any upstream. */
export const MCP_FAILURES = 'outcome!~"ok|limited|invalid_arguments"';

export const HTTP_COUNT = 'ziggie_http_request_duration_seconds_count';
export const HTTP_BUCKET = 'ziggie_http_request_duration_seconds_bucket';
export const GRPC_SERVED = 'ziggie_grpc_server_requests_total';

/**
 * API requests per second of each series: HTTP without probes, and gRPC served. The two metrics
 * never share a label set, so `or` is their union.
 */
export function apiRequests(window: string, ...matchers: string[]): string {
  return `${rate(sel(HTTP_COUNT, NOT_PROBES, ...matchers), window)} or ${rate(sel(GRPC_SERVED, ...matchers), window)}`;
}

/** Failed API requests per second: HTTP 5xx and gRPC server-side codes. */
export function apiErrors(window: string, ...matchers: string[]): string {
  return `${rate(sel(HTTP_COUNT, NOT_PROBES, HTTP_ERRORS, ...matchers), window)} or ${rate(sel(GRPC_SERVED, GRPC_ERRORS, ...matchers), window)}`;
}

/** `metric{a, b}` from matchers (empty ones dropped). */
export function sel(metric: string, ...matchers: Array<string | undefined>): string {
  const m = matchers.filter((x): x is string => Boolean(x));
  return m.length > 0 ? `${metric}{${m.join(', ')}}` : metric;
}

function by(labels: readonly string[]): string {
  return labels.length > 0 ? ` by (${labels.join(', ')})` : '';
}

export function sumBy(labels: readonly string[], expr: string): string {
  return `sum${by(labels)} (${expr})`;
}

export function maxBy(labels: readonly string[], expr: string): string {
  return `max${by(labels)} (${expr})`;
}

export function rate(selector: string, window = '$__rate_interval'): string {
  return `rate(${selector}[${window}])`;
}

export function sumRate(labels: readonly string[], selector: string, window?: string): string {
  return sumBy(labels, rate(selector, window));
}

/**
 * errors / all per group, and 0 for a group that had traffic but no errors: a plain ratio would
 * have no series at all while nothing fails, and a panel would show "No data" for a healthy service.
 */
export function errorRatio(labels: readonly string[], errors: string, all: string, window?: string): string {
  const total = sumRate(labels, all, window);
  return `(${sumRate(labels, errors, window)} / ${total}) or (0 * ${total})`;
}

/** Errors per second per group, 0 for a group with traffic and no errors. */
export function errorRate(labels: readonly string[], errors: string, all: string, window?: string): string {
  return `${sumRate(labels, errors, window)} or (0 * ${sumRate(labels, all, window)})`;
}

export function quantile(q: number, labels: readonly string[], bucketSelector: string, window?: string): string {
  return `histogram_quantile(${q}, ${sumRate(['le', ...labels], bucketSelector, window)})`;
}

// ---------------------------------------------------------------------------------------------
// Metric names used by an expression (for the inventory check)

const FUNCTIONS = new Set([
  'abs', 'absent', 'absent_over_time', 'avg_over_time', 'ceil', 'changes', 'clamp', 'clamp_max', 'clamp_min', 'count_over_time',
  'day_of_month', 'day_of_week', 'days_in_month', 'delta', 'deriv', 'exp', 'floor', 'histogram_quantile', 'holt_winters', 'hour',
  'idelta', 'increase', 'irate', 'label_join', 'label_replace', 'last_over_time', 'ln', 'log10', 'log2', 'max_over_time',
  'min_over_time', 'minute', 'month', 'predict_linear', 'present_over_time', 'quantile_over_time', 'rate', 'resets', 'round',
  'scalar', 'sgn', 'sort', 'sort_desc', 'sqrt', 'stddev_over_time', 'stdvar_over_time', 'sum_over_time', 'time', 'timestamp',
  'vector', 'year',
]);
const AGGREGATIONS = new Set(['sum', 'min', 'max', 'avg', 'group', 'stddev', 'stdvar', 'count', 'count_values', 'bottomk', 'topk', 'quantile']);
const KEYWORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'and', 'or', 'unless', 'offset', 'inf', 'nan']);

/**
 * The metric names an expression reads. Strings, label matchers, grouping clauses, ranges and
 * durations are removed first; what remains that is not a function, aggregation or keyword is a
 * metric name. Good enough for the expressions this directory writes (checked by the tests against
 * a real Prometheus, which would reject anything it misreads).
 */
export function metricNames(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, ' ')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
    .replace(/\boffset\s+\S+/g, ' ')
    .replace(/\$\{?[A-Za-z_][A-Za-z0-9_]*\}?/g, ' ');
  const names = new Set<string>();
  for (const m of stripped.matchAll(/[A-Za-z_:][A-Za-z0-9_:]*/g)) {
    const word = m[0];
    const next = stripped.slice(m.index + word.length).trimStart();
    if (next.startsWith('(') && (FUNCTIONS.has(word) || AGGREGATIONS.has(word))) continue;
    if (AGGREGATIONS.has(word) && /^(by|without)\b/.test(next)) continue;
    if (KEYWORDS.has(word.toLowerCase())) continue;
    names.add(word);
  }
  return [...names].sort();
}

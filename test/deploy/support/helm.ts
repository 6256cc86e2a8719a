import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseAllDocuments } from 'yaml';

/** Helpers of the Helm chart specs: a real helm (scripts/helm.sh), offline, and the rendered objects. */
export const ROOT = resolve(__dirname, '..', '..', '..');
export const CHART = join(ROOT, 'deploy/helm/ziggie');
export const CI_DIR = join(CHART, 'ci');
/** Every scenario under ci/, linted and rendered by the specs. */
export const SCENARIOS = readdirSync(CI_DIR)
  .filter((f) => f.endsWith('.yaml'))
  .sort();
export const RELEASE = 'ziggie';
export const NAMESPACE = 'ziggie';

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [key: string]: any;
}

export interface HelmResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

export function helm(args: string[]): HelmResult {
  const r = spawnSync('bash', [join(ROOT, 'scripts/helm.sh'), ...args], { cwd: ROOT, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

export const ciValues = (scenario: string): string[] => ['-f', join(CI_DIR, scenario)];

export function lint(args: string[], chart = CHART): HelmResult {
  return helm(['lint', '--strict', chart, ...args]);
}

/** `helm template` of release ziggie in namespace ziggie, as text; throws with helm's message on failure. */
export function renderText(args: string[], chart = CHART): string {
  const r = helm(['template', RELEASE, chart, '--namespace', NAMESPACE, ...args]);
  if (r.status !== 0) throw new Error(`helm template ${args.join(' ')} failed:\n${r.stderr}`);
  return r.stdout;
}

/** The objects `helm template` renders. */
export function render(args: string[], chart = CHART): K8sObject[] {
  return parseObjects(renderText(args, chart));
}

export function parseObjects(text: string): K8sObject[] {
  return parseAllDocuments(text)
    .map((d) => {
      if (d.errors.length > 0) throw new Error(`helm template produced invalid YAML: ${d.errors[0]!.message}`);
      return d.toJS() as K8sObject | null;
    })
    .filter((o): o is K8sObject => o !== null);
}

export interface ValidationResult {
  index: number;
  apiVersion: string;
  kind: string;
  name: string;
  errors: string[];
}

/** Runs support/validate-objects.mjs (kubernetes-models + Kong schemas, unknown fields refused). */
export function validateObjects(objects: unknown[]): ValidationResult[] {
  const r = spawnSync(process.execPath, [join(__dirname, 'validate-objects.mjs')], {
    input: JSON.stringify(objects),
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  if (r.status !== 0) throw new Error(`validate-objects.mjs failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as ValidationResult[];
}

export const ofKind = (objects: K8sObject[], kind: string): K8sObject[] => objects.filter((o) => o.kind === kind);
export const named = (objects: K8sObject[], kind: string, name: string): K8sObject | undefined =>
  objects.find((o) => o.kind === kind && o.metadata.name === name);
export const label = (o: K8sObject, key: string): string | undefined => o.metadata.labels?.[key];

/** Every Pod template (Deployments, StatefulSets, DaemonSets, Jobs, CronJobs) and bare Pod, with where it came from. */
export function podSpecs(objects: K8sObject[]): Array<{ owner: string; spec: any }> {
  const out: Array<{ owner: string; spec: any }> = [];
  for (const o of objects) {
    const owner = `${o.kind}/${o.metadata.name}`;
    if (['Deployment', 'StatefulSet', 'DaemonSet', 'Job', 'ReplicaSet'].includes(o.kind)) out.push({ owner, spec: o.spec.template.spec });
    else if (o.kind === 'CronJob') out.push({ owner, spec: o.spec.jobTemplate.spec.template.spec });
    else if (o.kind === 'Pod') out.push({ owner, spec: o.spec });
  }
  return out;
}

/** The six services and their ports (libs/platform/src/config/services.ts DefaultPorts). */
export const SERVICES: Record<string, { http: number; grpc?: number; grpcService?: string }> = {
  gateway: { http: 4000 },
  orchestrator: { http: 4010, grpc: 50051, grpcService: 'Orchestrator' },
  'agent-registry': { http: 4020, grpc: 50052, grpcService: 'AgentRegistry' },
  'workspace-coord': { http: 4030, grpc: 50053, grpcService: 'WorkspaceCoord' },
  'agent-runtime': { http: 4040 },
  'mcp-gateway': { http: 4100, grpc: 50054, grpcService: 'McpGateway' },
};

/**
 * Who calls whom over gRPC (DESIGN §2): gateway fronts everything; orchestrator asks
 * agent-registry for agents and workspace-coord for workspaces and pool leases; workspace-coord
 * reads task stats from orchestrator; agent-runtime calls tools on mcp-gateway, refreshes its
 * agents from agent-registry and submits child tasks of delegate steps to orchestrator.
 * helm-mesh.deploy-spec.ts also checks this table against the PeerClients calls in the code.
 */
export const GRPC_CALLS: ReadonlyArray<readonly [caller: string, callee: string]> = [
  ['gateway', 'orchestrator'],
  ['gateway', 'workspace-coord'],
  ['gateway', 'agent-registry'],
  ['gateway', 'mcp-gateway'],
  ['orchestrator', 'workspace-coord'],
  ['orchestrator', 'agent-registry'],
  ['workspace-coord', 'orchestrator'],
  ['agent-runtime', 'mcp-gateway'],
  ['agent-runtime', 'agent-registry'],
  ['agent-runtime', 'orchestrator'],
];

export const fullName = (component: string): string => `${RELEASE}-${component}`;
export const principal = (component: string, ns = NAMESPACE): string => `cluster.local/ns/${ns}/sa/${fullName(component)}`;

// The Kubernetes API as the GPU pools use it: one Deployment read and watched, its scale
// subresource, and a KEDA ScaledObject's replica bounds. Nothing else in mcp-gateway talks to
// Kubernetes.
import { ZiggieError } from '@ziggie/contracts';

/**
 * @kubernetes/client-node is published as ES modules only. It is loaded with import(), which tsc
 * (module node16) keeps as a real dynamic import in our CommonJS output, so plain Node loads the
 * ES module natively; jest's module system cannot run ES modules in a CommonJS test, so there
 * swc turns the import() into require() and jest.config.js compiles the package (and the ESM-only
 * packages it imports) to CommonJS. Loaded once, and only when a pool needs Kubernetes.
 */
function importClientNode() {
  return import('@kubernetes/client-node');
}
type ClientNode = Awaited<ReturnType<typeof importClientNode>>;
type KubeConfig = InstanceType<ClientNode['KubeConfig']>;
type ConfigurationOptions = Parameters<InstanceType<ClientNode['AppsV1Api']>['readNamespacedDeploymentScale']>[1];

let clientNode: Promise<ClientNode> | undefined;
const loadClientNode = (): Promise<ClientNode> => (clientNode ??= importClientNode());

export interface DeploymentState {
  /** False when the Deployment does not exist (not created yet, or deleted). */
  exists: boolean;
  /** spec.replicas */
  desired: number;
  /** status.readyReplicas */
  ready: number;
}

export interface ReplicaBounds {
  minReplicas: number;
  maxReplicas: number;
}

export type WatchEnd = (err?: Error) => void;

/** What the pools need from the Kubernetes API; the test double of the API server answers the same requests. */
export interface KubeApi {
  /** The namespace of the client's context (the service account's in a cluster). */
  defaultNamespace(): string | undefined;
  /** Lists the one Deployment by name: its state and the list's resourceVersion to watch from. */
  readDeployment(namespace: string, name: string): Promise<{ state: DeploymentState; resourceVersion: string }>;
  /**
   * Watches the Deployment from a resourceVersion: `onState` for every change, `onEnd` once when
   * the watch ends (the server closed it, an ERROR event, a network error), possibly before the
   * promise settles. Resolves to a stop function once the server has answered; rejects (without
   * calling `onEnd`) when it does not answer in time.
   */
  watchDeployment(namespace: string, name: string, resourceVersion: string, onState: (s: DeploymentState) => void, onEnd: WatchEnd): Promise<() => void>;
  /** Sets spec.replicas through the deployments/scale subresource (merge patch); answers the new spec.replicas. */
  scaleDeployment(namespace: string, name: string, replicas: number): Promise<number>;
  /** spec.minReplicaCount / spec.maxReplicaCount of a KEDA ScaledObject (KEDA's defaults 0 and 100 when unset). */
  readScaledObject(namespace: string, name: string): Promise<ReplicaBounds>;
  /** Changes a ScaledObject's bounds (merge patch); answers the bounds it now has. */
  patchScaledObject(namespace: string, name: string, bounds: Partial<ReplicaBounds>): Promise<ReplicaBounds>;
}

const KEDA = { group: 'keda.sh', version: 'v1alpha1', plural: 'scaledobjects' } as const;
/** KEDA's defaults for a ScaledObject without bounds. */
const KEDA_DEFAULT_MIN = 0;
const KEDA_DEFAULT_MAX = 100;
/** The API server ends a watch after this long; it is then listed and watched again. */
const WATCH_SECONDS = 300;

type Json = Record<string, unknown>;

function num(value: unknown, fallback: number): number {
  return typeof value === 'number' && Number.isFinite(value) ? value : fallback;
}

/** The state of a Deployment as the API (or a watch event) gives it; spec.replicas defaults to 1 in Kubernetes. */
export function deploymentState(obj: unknown): DeploymentState {
  const o = (obj ?? {}) as { spec?: Json; status?: Json };
  return { exists: true, desired: num(o.spec?.replicas, 1), ready: num(o.status?.readyReplicas, 0) };
}

function boundsOf(obj: unknown): ReplicaBounds {
  const spec = ((obj ?? {}) as { spec?: Json }).spec ?? {};
  return { minReplicas: num(spec.minReplicaCount, KEDA_DEFAULT_MIN), maxReplicas: num(spec.maxReplicaCount, KEDA_DEFAULT_MAX) };
}

/** The message of a Kubernetes Status body, when the body is one. */
function statusMessage(body: unknown): string | undefined {
  let parsed = body;
  if (typeof body === 'string') {
    try {
      parsed = JSON.parse(body) as unknown;
    } catch {
      return body.trim().slice(0, 300) || undefined;
    }
  }
  const message = (parsed as { message?: unknown } | undefined)?.message;
  return typeof message === 'string' ? message : undefined;
}

/**
 * A failed Kubernetes request as the pools' error: a refused change (422) is the caller's
 * POOL_SCALE_INVALID; anything else (unreachable, timeout, 401/403 from RBAC, a missing object,
 * 5xx) means the pool cannot be managed now: POOL_BACKEND_UNAVAILABLE, with the reason.
 */
export function kubeError(err: unknown, what: string): ZiggieError {
  if (err instanceof ZiggieError) return err;
  const e = err as { code?: unknown; body?: unknown; message?: unknown; name?: unknown; statusCode?: unknown };
  const status = typeof e.code === 'number' ? e.code : typeof e.statusCode === 'number' ? e.statusCode : undefined;
  if (status !== undefined) {
    const message = statusMessage(e.body) ?? `HTTP ${status}`;
    if (status === 422) return new ZiggieError('POOL_SCALE_INVALID', `${what}: refused by the Kubernetes API: ${message}`);
    const hint = status === 401 || status === 403 ? ' (check the service account and its Role)' : '';
    return new ZiggieError('POOL_BACKEND_UNAVAILABLE', `${what}: Kubernetes API answered ${status}: ${message}${hint}`, { status });
  }
  const reason = e.name === 'AbortError' || e.name === 'TimeoutError' ? 'no answer in time' : typeof e.message === 'string' ? e.message : String(err);
  return new ZiggieError('POOL_BACKEND_UNAVAILABLE', `${what}: Kubernetes API unreachable: ${reason}`);
}

/** The Kubernetes API through @kubernetes/client-node. */
export class KubeClient implements KubeApi {
  private readonly apps: InstanceType<ClientNode['AppsV1Api']>;
  private readonly custom: InstanceType<ClientNode['CustomObjectsApi']>;

  private constructor(
    private readonly k8s: ClientNode,
    private readonly kc: KubeConfig,
    private readonly timeoutMs: number,
  ) {
    this.apps = kc.makeApiClient(k8s.AppsV1Api);
    this.custom = kc.makeApiClient(k8s.CustomObjectsApi);
  }

  /** From a kubeconfig file when given, else the defaults: $KUBECONFIG, ~/.kube/config, or the in-cluster service account. */
  static async create(opts: { kubeconfig?: string; timeoutMs: number }): Promise<KubeClient> {
    const k8s = await loadClientNode();
    const kc = new k8s.KubeConfig();
    if (opts.kubeconfig) kc.loadFromFile(opts.kubeconfig);
    else kc.loadFromDefault();
    return new KubeClient(k8s, kc, opts.timeoutMs);
  }

  defaultNamespace(): string | undefined {
    return this.kc.getContextObject(this.kc.getCurrentContext())?.namespace || undefined;
  }

  /** Every request gets a time limit (the generated client has none); a patch says which kind it is. */
  private options(patchType?: string): ConfigurationOptions {
    const { Observable } = this.k8s;
    const timeoutMs = this.timeoutMs;
    const options: ConfigurationOptions = {
      middleware: [
        {
          pre: (ctx) => {
            ctx.setSignal(AbortSignal.timeout(timeoutMs));
            return new Observable(Promise.resolve(ctx));
          },
          post: (res) => new Observable(Promise.resolve(res)),
        },
      ],
      middlewareMergeStrategy: 'append',
    };
    return patchType ? this.k8s.setHeaderOptions('Content-Type', patchType, options) : options;
  }

  async readDeployment(namespace: string, name: string): Promise<{ state: DeploymentState; resourceVersion: string }> {
    try {
      const list = await this.apps.listNamespacedDeployment({ namespace, fieldSelector: `metadata.name=${name}` }, this.options());
      const item = list.items.find((d) => d.metadata?.name === name);
      return { state: item ? deploymentState(item) : { exists: false, desired: 0, ready: 0 }, resourceVersion: list.metadata?.resourceVersion ?? '' };
    } catch (err) {
      throw kubeError(err, `deployment ${namespace}/${name}`);
    }
  }

  async watchDeployment(namespace: string, name: string, resourceVersion: string, onState: (s: DeploymentState) => void, onEnd: WatchEnd): Promise<() => void> {
    let ended = false;
    const end = (err?: Error): void => {
      if (ended) return;
      ended = true;
      onEnd(err);
    };
    const watch = new this.k8s.Watch(this.kc);
    const query: Record<string, string | number | boolean> = { fieldSelector: `metadata.name=${name}`, allowWatchBookmarks: true, timeoutSeconds: WATCH_SECONDS };
    if (resourceVersion) query.resourceVersion = resourceVersion;
    const live: { controller?: AbortController } = {};
    const started = watch.watch(
      `/apis/apps/v1/namespaces/${encodeURIComponent(namespace)}/deployments`,
      query,
      (type: string, obj: unknown) => {
        if (ended) return;
        if (type === 'ADDED' || type === 'MODIFIED') onState(deploymentState(obj));
        else if (type === 'DELETED') onState({ exists: false, desired: 0, ready: 0 });
        else if (type === 'ERROR') {
          // e.g. 410 Gone: the resourceVersion is too old; the caller lists again.
          end(new Error(`watch of deployment ${namespace}/${name} ended: ${statusMessage(obj) ?? 'ERROR event'}`));
          live.controller?.abort();
        }
      },
      (err: unknown) => end(err ? new Error(`watch of deployment ${namespace}/${name} broke: ${err instanceof Error ? err.message : String(err)}`) : undefined),
    );
    // Watch.watch resolves only once the response headers arrive, and takes no signal: bound the wait.
    const timer = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), this.timeoutMs).unref());
    const first = await Promise.race([started, timer]);
    if (first === 'timeout') {
      ended = true;
      void started.then((c) => c.abort(), () => undefined);
      throw kubeError(Object.assign(new Error('timed out'), { name: 'TimeoutError' }), `watch of deployment ${namespace}/${name}`);
    }
    live.controller = first;
    if (ended) first.abort();
    return () => {
      ended = true;
      first.abort();
    };
  }

  async scaleDeployment(namespace: string, name: string, replicas: number): Promise<number> {
    try {
      const scale = await this.apps.patchNamespacedDeploymentScale({ namespace, name, body: { spec: { replicas } } }, this.options(this.k8s.PatchStrategy.MergePatch));
      return num(scale.spec?.replicas, replicas);
    } catch (err) {
      throw kubeError(err, `scale of deployment ${namespace}/${name}`);
    }
  }

  async readScaledObject(namespace: string, name: string): Promise<ReplicaBounds> {
    try {
      return boundsOf(await this.custom.getNamespacedCustomObject({ ...KEDA, namespace, name }, this.options()));
    } catch (err) {
      throw kubeError(err, `scaledobject ${namespace}/${name}`);
    }
  }

  async patchScaledObject(namespace: string, name: string, bounds: Partial<ReplicaBounds>): Promise<ReplicaBounds> {
    const spec: Json = {};
    if (bounds.minReplicas !== undefined) spec.minReplicaCount = bounds.minReplicas;
    if (bounds.maxReplicas !== undefined) spec.maxReplicaCount = bounds.maxReplicas;
    try {
      return boundsOf(await this.custom.patchNamespacedCustomObject({ ...KEDA, namespace, name, body: { spec } }, this.options(this.k8s.PatchStrategy.MergePatch)));
    } catch (err) {
      throw kubeError(err, `scaledobject ${namespace}/${name}`);
    }
  }
}

import { useState } from 'react';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { Link } from 'wouter';
import type { pb, PoolView } from '@ziggie/contracts';
import { api } from '../api';
import { deniedReason } from '../auth';
import { ago, Card, Denied, ErrorBox, Loading } from '../components/common';
import { useSession } from '../session';

/** Replicas, readiness and queue depth are not events: the screen rereads them this often. */
const POOL_REFRESH_MS = 5_000;
const KINDS = ['gpu', 'comfyui', 'inference', 'other'];

type Inference = NonNullable<PoolView['inference']>;

/** Shared resource pools with capacity and use, the GPU inference pods serving them, a pool's leases; scaling and capacity for config:change. */
export function Pools({ focus }: { focus?: string }) {
  const admin = !deniedReason(useSession(), 'config:change');
  const q = useQuery({
    queryKey: ['pools'],
    queryFn: ({ signal }) => api<{ items: PoolView[]; total: number }>('/v1/pools', { signal }),
    refetchInterval: POOL_REFRESH_MS,
  });
  const unreachable = (q.data?.items ?? []).some((p) => p.inference === undefined);
  return (
    <div className="pools">
      <h1>Pools</h1>
      <Card title={`Pools (${q.data?.total ?? '…'})`} testId="pool-list">
        <ErrorBox error={q.error} />
        {q.isPending ? <Loading what="pools" /> : null}
        {unreachable ? <p className="muted">mcp-gateway did not answer: the GPU inference pods are left out.</p> : null}
        {q.data ? (
          <table className="list">
            <thead>
              <tr>
                <th>Pool</th>
                <th>Kind</th>
                <th className="num">Units in use</th>
                <th className="num">P0 reserve</th>
                <th className="num">Leases</th>
                <th>Inference pods</th>
                <th className="num">Replicas (ready/desired)</th>
                <th className="num">Bounds</th>
                <th className="num">Queue</th>
                <th className="num">In flight</th>
                <th>Last scaled</th>
              </tr>
            </thead>
            <tbody>
              {q.data.items.map((p) => (
                <tr key={p.name} data-pool={p.name} className={p.name === focus ? 'selected' : ''}>
                  <td>
                    <Link href={`/pools/${encodeURIComponent(p.name)}`}>{p.name}</Link>
                  </td>
                  <td>{p.kind ?? '—'}</td>
                  <td className="num">
                    {p.inUse ?? '—'}/{p.capacity ?? '—'}
                  </td>
                  <td className="num">{p.reservedP0 ?? '—'}</td>
                  <td className="num">{p.leases ?? '—'}</td>
                  <InferenceCells inference={p.inference} />
                </tr>
              ))}
            </tbody>
          </table>
        ) : null}
      </Card>
      {focus ? <PoolCard key={focus} name={focus} /> : <p className="muted">Open a pool for its leases{admin ? ', scaling and capacity' : ''}.</p>}
    </div>
  );
}

function InferenceCells({ inference }: { inference: PoolView['inference'] }) {
  if (!inference) {
    const why = inference === null ? 'none' : 'unknown';
    return (
      <>
        <td className="muted">{why}</td>
        <td className="num">—</td>
        <td className="num">—</td>
        <td className="num">—</td>
        <td className="num">—</td>
        <td>—</td>
      </>
    );
  }
  return (
    <>
      <td>
        {inference.mode}
        {inference.target ? <span className="muted"> · {inference.namespace ? `${inference.namespace}/` : ''}{inference.target}</span> : null}
      </td>
      <td className="num" data-testid="replicas">
        {inference.readyReplicas}/{inference.replicas}
      </td>
      <td className="num">
        {inference.minReplicas}–{inference.maxReplicas}
      </td>
      <td className="num">{inference.queueDepth}</td>
      <td className="num">{inference.inFlight}</td>
      <td className="muted">{inference.lastScaledAt ? `${ago(inference.lastScaledAt)} (${inference.lastScaleReason ?? '?'})` : '—'}</td>
    </>
  );
}

function PoolCard({ name }: { name: string }) {
  const pool = useQuery({
    queryKey: ['pools', 'one', name],
    queryFn: ({ signal }) => api<PoolView>(`/v1/pools/${encodeURIComponent(name)}`, { signal }),
    refetchInterval: POOL_REFRESH_MS,
  });
  const leases = useQuery({
    queryKey: ['pools', 'leases', name],
    queryFn: ({ signal }) => api<{ items: pb.ResourceLease[]; total: number }>(`/v1/pools/${encodeURIComponent(name)}/leases`, { signal }),
    refetchInterval: POOL_REFRESH_MS,
    // A pool only mcp-gateway knows has no leases to ask for.
    enabled: Boolean(pool.data && pool.data.capacity !== null),
  });
  const p = pool.data;
  return (
    <Card title={`Pool ${name}`} testId="pool-card">
      <ErrorBox error={pool.error} />
      {pool.isPending ? <Loading what="the pool" /> : null}
      {p ? (
        <div className="columns">
          <div>
            <dl className="facts">
              <dt>Kind</dt>
              <dd>{p.kind ?? '— (only mcp-gateway knows this pool)'}</dd>
              <dt>Units in use</dt>
              <dd data-testid="pool-in-use">
                {p.inUse ?? '—'} of {p.capacity ?? '—'} ({p.reservedP0 ?? 0} reserved for P0)
              </dd>
              <dt>Description</dt>
              <dd>{p.description || '—'}</dd>
              <dt>Inference pods</dt>
              <dd data-testid="pool-replicas">
                {p.inference
                  ? `${p.inference.mode}: ${p.inference.readyReplicas} ready of ${p.inference.replicas} (bounds ${p.inference.minReplicas}–${p.inference.maxReplicas}), queue ${p.inference.queueDepth}, in flight ${p.inference.inFlight}`
                  : p.inference === null
                    ? 'none: mcp-gateway has no GPU pool of this name'
                    : 'unknown: mcp-gateway did not answer'}
              </dd>
              {p.inference && p.inference.servers.length > 0 ? (
                <>
                  <dt>MCP servers</dt>
                  <dd>{p.inference.servers.join(', ')}</dd>
                </>
              ) : null}
            </dl>
            <h3>Leases</h3>
            <ErrorBox error={leases.error} />
            {leases.data ? (
              leases.data.items.length === 0 ? (
                <p className="muted">No live lease in your workspaces.</p>
              ) : (
                <table data-testid="pool-leases">
                  <thead>
                    <tr>
                      <th>Workspace</th>
                      <th className="num">Units</th>
                      <th>Priority</th>
                      <th>Holder</th>
                      <th>Expires</th>
                    </tr>
                  </thead>
                  <tbody>
                    {leases.data.items.map((l) => (
                      <tr key={l.id}>
                        <td>{l.workspace}</td>
                        <td className="num">{l.units}</td>
                        <td>{l.priority}</td>
                        <td>{l.holder}</td>
                        <td className="muted">{l.expiresAt}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              )
            ) : p.capacity === null ? (
              <p className="muted">None: workspace-coord does not lease this pool.</p>
            ) : null}
          </div>
          <div>
            <ScaleForm name={name} inference={p.inference} />
            <CapacityForm pool={p} />
          </div>
        </div>
      ) : null}
    </Card>
  );
}

/** A number field's value as the API takes it: empty is left out; anything else is sent as typed for the API to judge. */
function numberOrText(v: string): number | string | undefined {
  const t = v.trim();
  if (!t) return undefined;
  return /^-?\d+$/.test(t) ? Number(t) : t;
}

function ScaleForm({ name, inference }: { name: string; inference: Inference | null | undefined }) {
  const session = useSession();
  const client = useQueryClient();
  const [replicas, setReplicas] = useState('');
  const [minReplicas, setMin] = useState('');
  const [maxReplicas, setMax] = useState('');
  const denied =
    deniedReason(session, 'config:change') ??
    (inference === undefined ? 'mcp-gateway did not answer' : inference === null ? 'no GPU inference pods serve this pool' : inference.mode === 'static' ? 'a static pool has fixed endpoints' : null);
  const scale = useMutation({
    mutationFn: () =>
      api<Inference & { name: string }>(`/v1/pools/${encodeURIComponent(name)}/scale`, {
        method: 'POST',
        body: { replicas: numberOrText(replicas), minReplicas: numberOrText(minReplicas), maxReplicas: numberOrText(maxReplicas) },
      }),
    onSuccess: () => {
      setReplicas('');
      setMin('');
      setMax('');
      void client.invalidateQueries({ queryKey: ['pools'] });
    },
  });
  return (
    <form
      className="schema-form"
      data-testid="scale-form"
      onSubmit={(e) => {
        e.preventDefault();
        scale.mutate();
      }}
    >
      <h3>Scale the inference pods (admin)</h3>
      <div className="row">
        <label>
          Replicas <input name="replicas" type="number" min={0} value={replicas} onChange={(e) => setReplicas(e.target.value)} placeholder={inference ? String(inference.replicas) : ''} disabled={Boolean(denied)} />
        </label>
        <label>
          Min <input name="minReplicas" type="number" min={0} value={minReplicas} onChange={(e) => setMin(e.target.value)} placeholder={inference ? String(inference.minReplicas) : ''} disabled={Boolean(denied)} />
        </label>
        <label>
          Max <input name="maxReplicas" type="number" min={0} value={maxReplicas} onChange={(e) => setMax(e.target.value)} placeholder={inference ? String(inference.maxReplicas) : ''} disabled={Boolean(denied)} />
        </label>
      </div>
      <div>
        <button type="submit" disabled={Boolean(denied) || scale.isPending} title={denied ?? undefined}>
          Scale
        </button>
        <Denied reason={denied} />
      </div>
      {scale.data ? (
        <p className="muted" data-testid="scale-result">
          Scaled: {scale.data.replicas} desired, bounds {scale.data.minReplicas}–{scale.data.maxReplicas}.
        </p>
      ) : null}
      <ErrorBox error={scale.error} />
    </form>
  );
}

function CapacityForm({ pool }: { pool: PoolView }) {
  const session = useSession();
  const client = useQueryClient();
  const denied = deniedReason(session, 'config:change');
  const [kind, setKind] = useState(pool.kind ?? 'other');
  const [capacity, setCapacity] = useState(pool.capacity === null ? '' : String(pool.capacity));
  const [reservedP0, setReserved] = useState(pool.reservedP0 === null ? '0' : String(pool.reservedP0));
  const [description, setDescription] = useState(pool.description ?? '');
  const save = useMutation({
    mutationFn: () =>
      api<pb.Pool>(`/v1/pools/${encodeURIComponent(pool.name)}`, {
        method: 'PUT',
        body: { kind, capacity: numberOrText(capacity), reservedP0: numberOrText(reservedP0), description },
      }),
    onSuccess: () => void client.invalidateQueries({ queryKey: ['pools'] }),
  });
  return (
    <form
      className="schema-form"
      data-testid="capacity-form"
      onSubmit={(e) => {
        e.preventDefault();
        save.mutate();
      }}
    >
      <h3>{pool.capacity === null ? 'Lease this pool through workspace-coord (admin)' : 'Capacity (admin)'}</h3>
      <div className="row">
        <label>
          Kind{' '}
          <select name="kind" value={kind} onChange={(e) => setKind(e.target.value)} disabled={Boolean(denied)}>
            {KINDS.map((k) => (
              <option key={k}>{k}</option>
            ))}
          </select>
        </label>
        <label>
          Capacity <input name="capacity" type="number" min={0} value={capacity} onChange={(e) => setCapacity(e.target.value)} disabled={Boolean(denied)} />
        </label>
        <label>
          P0 reserve <input name="reservedP0" type="number" min={0} value={reservedP0} onChange={(e) => setReserved(e.target.value)} disabled={Boolean(denied)} />
        </label>
      </div>
      <label>
        Description <input name="description" value={description} onChange={(e) => setDescription(e.target.value)} disabled={Boolean(denied)} />
      </label>
      <div>
        <button type="submit" disabled={Boolean(denied) || save.isPending} title={denied ?? undefined}>
          Save capacity
        </button>
        <Denied reason={denied} />
      </div>
      {save.isSuccess ? <p className="muted">Saved.</p> : null}
      <ErrorBox error={save.error} />
    </form>
  );
}

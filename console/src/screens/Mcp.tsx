import { useMemo, useState } from 'react';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import type { PageView, pb } from '@ziggie/contracts';
import { api, ApiError } from '../api';
import { deniedReason } from '../auth';
import { Card, ErrorBox, Loading, Status } from '../components/common';
import { Output } from '../components/Output';
import { SchemaForm } from '../components/SchemaForm';
import { readEventStream } from '../live';
import { useSession } from '../session';

interface Progress {
  progress: number;
  total?: number;
  message?: string;
}

export function Mcp() {
  const session = useSession();
  const denied = deniedReason(session, 'mcp:call');
  const servers = useQuery({
    queryKey: ['mcp', 'servers'],
    queryFn: ({ signal }) => api<PageView<pb.Server>>('/v1/mcp/servers', { signal }),
    enabled: !denied,
  });
  const tools = useQuery({
    queryKey: ['mcp', 'tools'],
    queryFn: ({ signal }) => api<PageView<pb.Tool>>('/v1/mcp/tools?limit=500', { signal }),
    enabled: !denied,
  });
  const [search, setSearch] = useState('');
  const [selected, setSelected] = useState<string | null>(null);
  const shown = useMemo(() => {
    const s = search.trim().toLowerCase();
    return (tools.data?.items ?? []).filter((t) => !s || t.name.toLowerCase().includes(s) || t.description.toLowerCase().includes(s));
  }, [tools.data, search]);
  if (denied) return <p className="muted">The MCP console {denied}.</p>;
  const tool = tools.data?.items.find((t) => t.name === selected) ?? null;
  return (
    <div className="mcp">
      <h1>MCP console</h1>
      <Card title="Upstream servers" testId="mcp-servers">
        {servers.isError ? <ErrorBox error={servers.error} /> : null}
        {servers.isPending ? (
          <Loading what="servers" />
        ) : (
          <table className="list">
            <thead>
              <tr>
                <th>Server</th>
                <th>Transport</th>
                <th>Status</th>
                <th className="num">Tools</th>
                <th>Replicas (breaker)</th>
                <th className="num">Quarantined</th>
              </tr>
            </thead>
            <tbody>
              {(servers.data?.items ?? []).map((s) => (
                <tr key={s.name}>
                  <td>{s.name}</td>
                  <td>{s.transport}</td>
                  <td>
                    <Status value={s.status} /> {s.error ? <span className="muted">{s.error}</span> : null}
                  </td>
                  <td className="num">{s.tools}</td>
                  <td>
                    {s.replicas.map((r) => (
                      <span key={r.id} className={`replica ${r.up ? '' : 'down'}`} title={`${r.outstanding} outstanding`}>
                        {r.id}: {r.breaker}
                      </span>
                    ))}
                  </td>
                  <td className="num">{s.quarantined}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </Card>
      <Pins />
      <div className="columns">
        <Card title="Tool catalog" testId="mcp-tools">
          <input className="search" placeholder="Search tools" value={search} onChange={(e) => setSearch(e.target.value)} name="tool-search" />
          {tools.isError ? <ErrorBox error={tools.error} /> : null}
          {tools.isPending ? <Loading what="tools" /> : null}
          <ul className="tool-list">
            {shown.map((t) => (
              <li key={t.name} className={t.name === selected ? 'selected' : ''}>
                <button className="link" onClick={() => setSelected(t.name)} data-tool={t.name}>
                  {t.name}
                </button>
                <small className="muted">{t.title || t.description}</small>
              </li>
            ))}
          </ul>
          <p className="muted">
            {shown.length} of {tools.data?.total ?? 0} tools
          </p>
        </Card>
        {tool ? <CallTool key={tool.name} tool={tool} /> : <Card title="Call a tool"><p className="muted">Choose a tool from the catalog.</p></Card>}
      </div>
    </div>
  );
}

function CallTool({ tool }: { tool: pb.Tool }) {
  const [busy, setBusy] = useState(false);
  const [progress, setProgress] = useState<Progress[]>([]);
  const [result, setResult] = useState<Record<string, unknown> | null>(null);
  const [error, setError] = useState<unknown>(null);
  const call = async (args: Record<string, unknown>) => {
    setBusy(true);
    setProgress([]);
    setResult(null);
    setError(null);
    try {
      await readEventStream(
        `/v1/mcp/tools/${encodeURIComponent(tool.name)}/call`,
        (e) => {
          const data = JSON.parse(e.data) as Record<string, unknown>;
          if (e.event === 'progress') setProgress((p) => [...p, data as unknown as Progress]);
          else if (e.event === 'result') setResult(data);
          else if (e.event === 'error') setError(new ApiError(data as never));
        },
        new AbortController().signal,
        { arguments: args },
      );
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  const last = progress[progress.length - 1];
  return (
    <Card title={`Call ${tool.name}`} testId="call-tool">
      <p className="muted">{tool.description}</p>
      <SchemaForm idPrefix="tool" schema={tool.inputSchema} submitLabel="Call tool" busy={busy} onSubmit={(args) => void call(args)} />
      {last ? (
        <p data-testid="tool-progress" data-count={progress.length}>
          Progress {last.progress}
          {last.total ? ` / ${last.total}` : ''} {last.message ?? ''}
          {last.total ? <progress value={last.progress} max={last.total} /> : null}
        </p>
      ) : null}
      <ErrorBox error={error} />
      {result ? (
        <div data-testid="tool-result" data-error={String(result.isError === true)}>
          <h3>{result.isError === true ? 'Tool reported an error' : 'Result'}</h3>
          <Output value={result} />
        </div>
      ) : null}
    </Card>
  );
}

/**
 * Tool definitions that changed upstream and wait for an admin's approval before they can be
 * called again (pinning against a changed definition). Only a token with config:change sees it:
 * the others could neither list nor approve.
 */
function Pins() {
  const session = useSession();
  const denied = deniedReason(session, 'config:change');
  const client = useQueryClient();
  const q = useQuery({
    queryKey: ['mcp', 'pins', 'quarantined'],
    queryFn: ({ signal }) => api<PageView<pb.Pin>>('/v1/mcp/pins?quarantined=true', { signal }),
    enabled: !denied,
  });
  const approve = useMutation({
    mutationFn: (pin: pb.Pin) => api<pb.Pin>(`/v1/mcp/pins/${encodeURIComponent(pin.name)}/approve`, { method: 'POST', body: { hash: pin.pendingHash } }),
    onSuccess: () => void client.invalidateQueries({ queryKey: ['mcp'] }),
  });
  if (denied) return null;
  const pins = q.data?.items ?? [];
  return (
    <Card title="Quarantined tool definitions (admin)" testId="mcp-pins">
      <ErrorBox error={q.error ?? approve.error} />
      {q.isPending ? <Loading what="pins" /> : null}
      {q.data && pins.length === 0 ? <p className="muted">No tool waits for approval: every definition matches its pin.</p> : null}
      {pins.length > 0 ? (
        <table className="list">
          <thead>
            <tr>
              <th>Tool</th>
              <th>Pinned</th>
              <th>Changed to</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {pins.map((p) => (
              <tr key={p.name}>
                <td>{p.name}</td>
                <td>
                  <code title={p.pinnedHash}>{p.pinnedHash.slice(0, 12)}</code>
                </td>
                <td>
                  <code title={p.pendingHash}>{p.pendingHash.slice(0, 12)}</code>
                  <pre className="output json">{JSON.stringify(p.pending ?? {}, null, 2)}</pre>
                </td>
                <td>
                  <button disabled={approve.isPending} onClick={() => approve.mutate(p)}>
                    Approve the new definition
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
    </Card>
  );
}

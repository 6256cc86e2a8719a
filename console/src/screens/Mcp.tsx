import { useMemo, useState } from 'react';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useSearchParams } from 'wouter';
import type { McpPromptResultView, McpPromptView, McpResourceListView, McpResourceReadView, McpResourceView, PageView, pb } from '@ziggie/contracts';
import { api, ApiError, query } from '../api';
import { deniedReason } from '../auth';
import { Card, ErrorBox, Loading, Status } from '../components/common';
import { Output } from '../components/Output';
import { SchemaForm } from '../components/SchemaForm';
import type { JsonSchema } from '../schema-form';
import { readEventStream } from '../live';
import { useSession } from '../session';

interface Progress {
  progress: number;
  total?: number;
  message?: string;
}

const TABS = [
  ['tools', 'Tools'],
  ['resources', 'Resources'],
  ['prompts', 'Prompts'],
] as const;
type Tab = (typeof TABS)[number][0];
/** The API's largest page: upstreams list a handful to a few hundred each, searched here. */
const CATALOG_PAGE = 500;

export function Mcp() {
  const session = useSession();
  const denied = deniedReason(session, 'mcp:call');
  const [params, setParams] = useSearchParams();
  const tab: Tab = TABS.find(([t]) => t === params.get('tab'))?.[0] ?? 'tools';
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
                <th className="num">Resources</th>
                <th className="num">Prompts</th>
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
                  <td className="num">{s.resources}</td>
                  <td className="num">{s.prompts}</td>
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
      <div className="tabs" role="group" aria-label="Catalog">
        {TABS.map(([t, label]) => (
          <button key={t} aria-pressed={tab === t} data-tab={t} onClick={() => setParams(t === 'tools' ? {} : { tab: t })}>
            {label}
          </button>
        ))}
      </div>
      {tab === 'resources' ? <Resources /> : null}
      {tab === 'prompts' ? <Prompts /> : null}
      {tab === 'tools' ? (
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
      ) : null}
    </div>
  );
}

const matches = (search: string, ...fields: string[]): boolean => {
  const s = search.trim().toLowerCase();
  return !s || fields.some((f) => f.toLowerCase().includes(s));
};

/** Resources of every upstream the token may read, their URI templates, and one resource read. */
function Resources() {
  const list = useQuery({
    queryKey: ['mcp', 'resources'],
    queryFn: ({ signal }) => api<McpResourceListView>(`/v1/mcp/resources${query({ limit: CATALOG_PAGE })}`, { signal }),
  });
  const [search, setSearch] = useState('');
  const [uri, setUri] = useState<string | null>(null);
  const [typed, setTyped] = useState('');
  const shown = (list.data?.items ?? []).filter((r) => matches(search, r.uri, r.name, r.title, r.description));
  const templates = (list.data?.templates ?? []).filter((t) => matches(search, t.uriTemplate, t.name, t.description));
  return (
    <div className="columns">
      <Card title="Resources" testId="mcp-resources">
        <input className="search" placeholder="Search resources" value={search} onChange={(e) => setSearch(e.target.value)} name="resource-search" />
        {list.isError ? <ErrorBox error={list.error} /> : null}
        {list.isPending ? <Loading what="resources" /> : null}
        <ul className="tool-list">
          {shown.map((r) => (
            <li key={r.uri} className={r.uri === uri ? 'selected' : ''}>
              <button className="link" onClick={() => setUri(r.uri)} data-resource={r.uri}>
                {r.title || r.name}
              </button>
              <small className="muted">
                {r.uri} · {r.server}
                {r.mimeType ? ` · ${r.mimeType}` : ''}
              </small>
            </li>
          ))}
        </ul>
        <p className="muted">
          {shown.length} of {list.data?.total ?? 0} resources
        </p>
        {templates.length > 0 ? (
          <>
            <h3>URI templates</h3>
            <ul className="tool-list">
              {templates.map((t) => (
                <li key={t.uriTemplate}>
                  <button className="link" onClick={() => setTyped(t.uriTemplate)} title="Fill the URI to read">
                    {t.uriTemplate}
                  </button>
                  <small className="muted">
                    {t.title || t.name} · {t.server}
                  </small>
                </li>
              ))}
            </ul>
          </>
        ) : null}
        <form
          className="schema-form"
          onSubmit={(e) => {
            e.preventDefault();
            if (typed.trim()) setUri(typed.trim());
          }}
        >
          <label htmlFor="resource-uri">Read a URI</label>
          <input id="resource-uri" name="resource-uri" value={typed} onChange={(e) => setTyped(e.target.value)} placeholder="scheme://…" />
          <button type="submit" disabled={!typed.trim()}>
            Read
          </button>
        </form>
      </Card>
      {uri ? <ReadResource key={uri} uri={uri} listed={list.data?.items.find((r) => r.uri === uri)} /> : <Card title="Read a resource"><p className="muted">Choose a resource, or read a URI a template matches.</p></Card>}
    </div>
  );
}

/**
 * One read resource. Each content item as the tool results are shown (output.ts): text as text,
 * raster images from base64 as images, any other blob by its size only; nothing runs as script.
 */
function ReadResource({ uri, listed }: { uri: string; listed: McpResourceView | undefined }) {
  const q = useQuery({
    queryKey: ['mcp', 'resource', uri],
    queryFn: ({ signal }) => api<McpResourceReadView>(`/v1/mcp/resources/read${query({ uri })}`, { signal }),
    retry: false,
  });
  const content = (q.data?.contents ?? []).map((c) => {
    if (typeof c.text === 'string') return { type: 'text', text: c.text };
    if (typeof c.blob === 'string' && c.mimeType?.startsWith('image/')) return { type: 'image', mimeType: c.mimeType, data: c.blob };
    if (typeof c.blob === 'string') return { uri: c.uri, mimeType: c.mimeType, blob: `(${Math.floor((c.blob.length * 3) / 4).toLocaleString('en')} bytes)` };
    return c;
  });
  return (
    <Card title={`Resource ${listed?.title || listed?.name || uri}`} testId="resource-read">
      <p className="muted">
        <code>{uri}</code>
        {listed?.description ? ` · ${listed.description}` : ''}
      </p>
      {q.isPending ? <Loading what="the resource" /> : null}
      <ErrorBox error={q.error} />
      {q.data ? (
        <div data-testid="resource-contents" data-count={q.data.contents.length}>
          <Output value={{ content }} />
        </div>
      ) : null}
    </Card>
  );
}

/** Prompts of every upstream the token may get, and one prompt's messages from a form of its arguments. */
function Prompts() {
  const list = useQuery({
    queryKey: ['mcp', 'prompts'],
    queryFn: ({ signal }) => api<PageView<McpPromptView>>(`/v1/mcp/prompts${query({ limit: CATALOG_PAGE })}`, { signal }),
  });
  const [search, setSearch] = useState('');
  const [selected, setSelected] = useState<string | null>(null);
  const shown = (list.data?.items ?? []).filter((p) => matches(search, p.name, p.title, p.description));
  const prompt = list.data?.items.find((p) => p.name === selected) ?? null;
  return (
    <div className="columns">
      <Card title="Prompts" testId="mcp-prompts">
        <input className="search" placeholder="Search prompts" value={search} onChange={(e) => setSearch(e.target.value)} name="prompt-search" />
        {list.isError ? <ErrorBox error={list.error} /> : null}
        {list.isPending ? <Loading what="prompts" /> : null}
        <ul className="tool-list">
          {shown.map((p) => (
            <li key={p.name} className={p.name === selected ? 'selected' : ''}>
              <button className="link" onClick={() => setSelected(p.name)} data-prompt={p.name}>
                {p.name}
              </button>
              <small className="muted">{p.title || p.description}</small>
            </li>
          ))}
        </ul>
        <p className="muted">
          {shown.length} of {list.data?.total ?? 0} prompts
        </p>
      </Card>
      {prompt ? <GetPrompt key={prompt.name} prompt={prompt} /> : <Card title="Get a prompt"><p className="muted">Choose a prompt from the list.</p></Card>}
    </div>
  );
}

/** A prompt's arguments as a JSON Schema of strings, for the form the tools use. */
function argumentsSchema(p: McpPromptView): JsonSchema {
  return {
    type: 'object',
    properties: Object.fromEntries(p.arguments.map((a) => [a.name, { type: 'string', title: a.title || a.name, ...(a.description ? { description: a.description } : {}) }])),
    required: p.arguments.filter((a) => a.required).map((a) => a.name),
  };
}

function GetPrompt({ prompt }: { prompt: McpPromptView }) {
  const schema = useMemo(() => argumentsSchema(prompt), [prompt]);
  const get = useMutation({
    mutationFn: (args: Record<string, unknown>) => api<McpPromptResultView>(`/v1/mcp/prompts/${encodeURIComponent(prompt.name)}/get`, { method: 'POST', body: { arguments: args } }),
  });
  return (
    <Card title={`Get ${prompt.name}`} testId="get-prompt">
      {prompt.description ? <p className="muted">{prompt.description}</p> : null}
      <SchemaForm idPrefix="prompt" schema={schema} submitLabel="Get prompt" busy={get.isPending} onSubmit={(args) => get.mutate(args)} />
      <ErrorBox error={get.error} />
      {get.data ? (
        <div data-testid="prompt-messages" data-count={get.data.messages.length}>
          {get.data.description ? <p className="muted">{get.data.description}</p> : null}
          {get.data.messages.map((m, i) => (
            <div key={i} className="prompt-message" data-role={m.role}>
              <h3>{m.role}</h3>
              <Output value={{ content: [m.content] }} />
            </div>
          ))}
        </div>
      ) : null}
    </Card>
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

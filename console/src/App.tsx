import { useState, type FormEvent } from 'react';
import { QueryCache, QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { Link, Route, Router, Switch, useLocation } from 'wouter';
import { ApiError, setBearer } from './api';
import { forgetToken, sessionOf, storeToken, type Session } from './auth';
import { LiveProvider, useLive } from './LiveProvider';
import { SessionContext } from './session';
import { Overview } from './screens/Overview';
import { Tasks } from './screens/Tasks';
import { TaskDetail } from './screens/TaskDetail';
import { Agents } from './screens/Agents';
import { Mcp } from './screens/Mcp';
import { Workspaces } from './screens/Workspaces';
import { Pools } from './screens/Pools';
import { Policies } from './screens/Governance';
import { Audit } from './screens/Audit';

function makeClient(onUnauthorized: () => void): QueryClient {
  return new QueryClient({
    queryCache: new QueryCache({
      onError: (err) => {
        if (err instanceof ApiError && err.problem.status === 401) onUnauthorized();
      },
    }),
    defaultOptions: {
      queries: {
        // Live events say when data changed; focus and reconnect need not refetch everything.
        refetchOnWindowFocus: false,
        staleTime: 30_000,
        // A refusal will not change by asking again; a network error might.
        retry: (count, err) => count < 2 && !(err instanceof ApiError && err.problem.status >= 400 && err.problem.status < 500),
      },
    },
  });
}

function SignIn({ onToken, expired }: { onToken(t: string): void; expired: boolean }) {
  const [value, setValue] = useState('');
  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (value.trim()) onToken(value.trim());
  };
  return (
    <main className="signin">
      <h1>Ziggie Command Center</h1>
      {expired ? <p className="error">The token was refused or has expired: sign in again.</p> : null}
      <p>
        Open the console URL that <code>npm start</code> (or <code>ziggie up</code>) prints, or paste a token from <code>ziggie token</code>.
      </p>
      <form onSubmit={submit}>
        <label htmlFor="token">Bearer token</label>
        <textarea id="token" rows={4} value={value} onChange={(e) => setValue(e.target.value)} spellCheck={false} />
        <button type="submit">Sign in</button>
      </form>
    </main>
  );
}

function LiveBadge() {
  const { state } = useLive();
  return (
    <span className={`live live-${state}`} data-testid="live" data-state={state}>
      {state === 'live' ? '● live' : state === 'connecting' ? '○ connecting' : '○ offline'}
    </span>
  );
}

function Nav({ session, onSignOut }: { session: Session; onSignOut(): void }) {
  const [location] = useLocation();
  const item = (href: string, label: string) => (
    <Link href={href} className={(href === '/' ? location === '/' : location.startsWith(href)) ? 'active' : ''}>
      {label}
    </Link>
  );
  return (
    <header className="top">
      <span className="brand">Ziggie Command Center</span>
      <nav>
        {item('/', 'Overview')}
        {item('/tasks', 'Tasks')}
        {item('/agents', 'Agents')}
        {item('/workspaces', 'Workspaces')}
        {item('/mcp', 'MCP')}
        {item('/pools', 'Pools')}
        {item('/policies', 'Policies')}
        {item('/audit', 'Audit')}
      </nav>
      <LiveBadge />
      <span className="who" title={`workspaces: ${session.workspaces.join(', ')}`}>
        {session.subject} · {session.roles.join(', ')}
      </span>
      <button className="link" onClick={onSignOut}>
        Sign out
      </button>
    </header>
  );
}

export function App({ token }: { token: string | null }) {
  const [session, setSession] = useState<Session | null>(() => (token ? sessionOf(token) : null));
  const [expired, setExpired] = useState(false);
  const signOut = (refused: boolean) => {
    forgetToken(sessionStorage);
    setBearer(null);
    setExpired(refused);
    setSession(null);
  };
  const [client] = useState(() => makeClient(() => signOut(true)));

  if (!session) {
    return (
      <SignIn
        expired={expired}
        onToken={(t) => {
          const s = sessionOf(t);
          if (!s) return;
          storeToken(sessionStorage, t);
          setBearer(t);
          client.clear();
          setSession(s);
        }}
      />
    );
  }
  return (
    <QueryClientProvider client={client}>
      <SessionContext.Provider value={session}>
        <Router base="/console">
          <LiveProvider>
            <Nav session={session} onSignOut={() => signOut(false)} />
            <main className="content">
              <Switch>
                <Route path="/" component={Overview} />
                <Route path="/tasks" component={Tasks} />
                <Route path="/tasks/:id">{(p) => <TaskDetail id={p.id} />}</Route>
                <Route path="/agents">{() => <Agents />}</Route>
                <Route path="/agents/:id">{(p) => <Agents focus={p.id} />}</Route>
                <Route path="/workspaces">{() => <Workspaces />}</Route>
                <Route path="/workspaces/:id">{(p) => <Workspaces focus={p.id} />}</Route>
                <Route path="/mcp" component={Mcp} />
                <Route path="/pools">{() => <Pools />}</Route>
                <Route path="/pools/:name">{(p) => <Pools focus={p.name} />}</Route>
                <Route path="/policies">{() => <Policies />}</Route>
                <Route path="/policies/:id">{(p) => <Policies focus={p.id} />}</Route>
                <Route path="/audit" component={Audit} />
                <Route>
                  <p>Nothing here.</p>
                </Route>
              </Switch>
            </main>
          </LiveProvider>
        </Router>
      </SessionContext.Provider>
    </QueryClientProvider>
  );
}

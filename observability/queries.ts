/**
 * The queries of every panel, and Grafana's variables replaced the way Grafana would: the
 * drift and inventory checks read them, and the end-to-end test runs each one against a real
 * Prometheus.
 */
import type * as dashboard from '@grafana/grafana-foundation-sdk/dashboard';

export interface PanelQuery {
  dashboard: string;
  panel: string;
  panelType: string;
  refId: string;
  expr: string;
  instant: boolean;
}

interface PanelLike {
  type?: string;
  title?: string;
  targets?: Array<{ refId?: string; expr?: string; instant?: boolean; range?: boolean }>;
  panels?: PanelLike[];
}

/** Every non-row panel, rows' nested panels included. */
export function panelsOf(d: dashboard.Dashboard): PanelLike[] {
  const out: PanelLike[] = [];
  const walk = (list: PanelLike[] = []) => {
    for (const p of list) {
      if (p.type === 'row') walk(p.panels);
      else out.push(p);
    }
  };
  walk(d.panels as PanelLike[]);
  return out;
}

export function panelQueries(d: dashboard.Dashboard): PanelQuery[] {
  return panelsOf(d).flatMap((p) =>
    (p.targets ?? []).map((t) => ({
      dashboard: d.uid ?? d.title ?? '',
      panel: p.title ?? '',
      panelType: p.type ?? '',
      refId: t.refId ?? '',
      expr: t.expr ?? '',
      instant: t.instant === true,
    })),
  );
}

/** What "All" and Grafana's interval variables become against the local Prometheus. */
export const LOCAL_VARIABLES: Record<string, string> = {
  namespace: '.*',
  instance: '.*',
  __rate_interval: '1m',
  __interval: '15s',
  __range: '1h',
};

/** `$var` and `${var}` replaced; an unknown variable is an error, not a silent empty string. */
export function substitute(expr: string, vars: Record<string, string> = LOCAL_VARIABLES): string {
  return expr.replace(/\$\{(\w+)\}|\$(\w+)/g, (whole, braced: string | undefined, bare: string | undefined) => {
    const name = braced ?? bare ?? '';
    // label_replace's "$1" is a capture group, not a variable.
    if (/^\d+$/.test(name)) return whole;
    const value = vars[name];
    if (value === undefined) throw new Error(`unknown dashboard variable $${name} in ${expr}`);
    return value;
  });
}

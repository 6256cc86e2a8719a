/**
 * What every Ziggie dashboard shares: the `${datasource}` and `$namespace` variables, a panel id
 * sequence, and panel helpers that always set a description, a unit and queries with refIds.
 */
import * as common from '@grafana/grafana-foundation-sdk/common';
import * as dashboard from '@grafana/grafana-foundation-sdk/dashboard';
import * as gauge from '@grafana/grafana-foundation-sdk/gauge';
import * as prometheus from '@grafana/grafana-foundation-sdk/prometheus';
import * as stat from '@grafana/grafana-foundation-sdk/stat';
import * as table from '@grafana/grafana-foundation-sdk/table';
import * as timeseries from '@grafana/grafana-foundation-sdk/timeseries';

export const DATASOURCE: common.DataSourceRef = { type: 'prometheus', uid: '${datasource}' };
/** Matches every series locally (no namespace label) and the chosen release's in the cluster. */
export const IN_NAMESPACE = 'namespace=~"$namespace"';

export interface Query {
  expr: string;
  legend?: string;
  /** An instant query (stat, gauge and table panels). */
  instant?: boolean;
  table?: boolean;
}

export interface PanelOptions {
  title: string;
  description: string;
  unit: string;
  queries: Query[];
  span?: number;
  height?: number;
  min?: number;
  max?: number;
  /** Values at which the colour turns orange / red. */
  warnAt?: number;
  critAt?: number;
  mappings?: dashboard.ValueMapping[];
}

export type PanelBuilder = timeseries.PanelBuilder | stat.PanelBuilder | gauge.PanelBuilder | table.PanelBuilder;

function targets(queries: Query[]): prometheus.DataqueryBuilder[] {
  return queries.map((q, i) => {
    const t = new prometheus.DataqueryBuilder()
      .datasource(DATASOURCE)
      .refId(String.fromCharCode(65 + i))
      .expr(q.expr)
      .legendFormat(q.legend ?? '__auto');
    if (q.instant) t.instant();
    else t.range();
    if (q.table) t.format(prometheus.PromQueryFormat.Table);
    return t;
  });
}

function thresholds(o: PanelOptions): dashboard.ThresholdsConfigBuilder {
  const steps: dashboard.Threshold[] = [{ value: null, color: 'green' }];
  if (o.warnAt !== undefined) steps.push({ value: o.warnAt, color: 'orange' });
  if (o.critAt !== undefined) steps.push({ value: o.critAt, color: 'red' });
  return new dashboard.ThresholdsConfigBuilder().mode(dashboard.ThresholdsMode.Absolute).steps(steps);
}

function base<B extends PanelBuilder>(b: B, o: PanelOptions): B {
  b.title(o.title)
    .description(o.description)
    .datasource(DATASOURCE)
    .unit(o.unit)
    .span(o.span ?? 8)
    .height(o.height ?? 8)
    .thresholds(thresholds(o));
  for (const t of targets(o.queries)) b.withTarget(t);
  if (o.min !== undefined) b.min(o.min);
  if (o.max !== undefined) b.max(o.max);
  if (o.mappings) b.mappings(o.mappings);
  return b;
}

export function timeseriesPanel(o: PanelOptions & { stack?: boolean }): timeseries.PanelBuilder {
  const p = base(new timeseries.PanelBuilder(), o)
    .legend(new common.VizLegendOptionsBuilder().showLegend(true).displayMode(common.LegendDisplayMode.List).placement(common.LegendPlacement.Bottom))
    .tooltip(new common.VizTooltipOptionsBuilder().mode(common.TooltipDisplayMode.Multi).sort(common.SortOrder.Descending))
    .fillOpacity(o.stack ? 30 : 10)
    .lineWidth(1)
    .showPoints(common.VisibilityMode.Never);
  if (o.stack) p.stacking(new common.StackingConfigBuilder().mode(common.StackingMode.Normal));
  if (o.critAt !== undefined) p.thresholdsStyle(new common.GraphThresholdsStyleConfigBuilder().mode(common.GraphThresholdsStyleMode.Dashed));
  return p;
}

export function statPanel(o: PanelOptions): stat.PanelBuilder {
  return base(new stat.PanelBuilder(), { ...o, queries: o.queries.map((q) => ({ ...q, instant: true })) })
    .reduceOptions(new common.ReduceDataOptionsBuilder().calcs(['lastNotNull']).values(false))
    .colorMode(common.BigValueColorMode.Value)
    .graphMode(common.BigValueGraphMode.None)
    .textMode(common.BigValueTextMode.ValueAndName);
}

export function gaugePanel(o: PanelOptions): gauge.PanelBuilder {
  return base(new gauge.PanelBuilder(), { ...o, queries: o.queries.map((q) => ({ ...q, instant: true })) })
    .reduceOptions(new common.ReduceDataOptionsBuilder().calcs(['lastNotNull']).values(false))
    .showThresholdMarkers(true);
}

/** An instant query shown as rows; `columns` renames and orders the label columns (others hidden). */
export function tablePanel(o: PanelOptions & { columns: Record<string, string>; hideValue?: boolean }): table.PanelBuilder {
  const names = Object.keys(o.columns);
  const hidden: Record<string, boolean> = { Time: true, __name__: true, job: true, instance: true, namespace: true };
  if (o.hideValue) hidden.Value = true;
  return base(new table.PanelBuilder(), { ...o, queries: o.queries.map((q) => ({ ...q, instant: true, table: true })) })
    .withTransformation({ id: 'merge', options: {} })
    .withTransformation({
      id: 'organize',
      options: {
        excludeByName: hidden,
        indexByName: Object.fromEntries(names.map((n, i) => [n, i])),
        renameByName: o.columns,
      },
    });
}

/** Values (numbers or label values) shown as named, coloured states. */
export function stateMappings(states: Record<string, { text: string; color: string }>): dashboard.ValueMapping[] {
  return [
    {
      type: dashboard.MappingType.ValueToText,
      options: Object.fromEntries(Object.entries(states).map(([v, r], index) => [v, { ...r, index }])),
    },
  ];
}

export interface BoardOptions {
  uid: string;
  title: string;
  description: string;
  tags: string[];
  /** Extra query variables after datasource and namespace. */
  variables?: dashboard.QueryVariableBuilder[];
}

/** A dashboard with the shared variables, time settings and a panel id sequence. */
export class Board {
  private readonly builder: dashboard.DashboardBuilder;
  private nextId = 1;

  constructor(o: BoardOptions) {
    this.builder = new dashboard.DashboardBuilder(o.title)
      .uid(o.uid)
      .description(o.description)
      .tags(['ziggie', ...o.tags])
      .editable()
      .tooltip(dashboard.DashboardCursorSync.Crosshair)
      .refresh('30s')
      .time({ from: 'now-1h', to: 'now' })
      .timezone('browser')
      .withVariable(new dashboard.DatasourceVariableBuilder('datasource').label('Data source').type('prometheus'))
      .withVariable(queryVariable('namespace', 'Namespace', 'label_values(ziggie_process_start_time_seconds, namespace)'))
      .link(
        new dashboard.DashboardLinkBuilder('Ziggie dashboards')
          .type(dashboard.DashboardLinkType.Dashboards)
          .tags(['ziggie'])
          .asDropdown(true)
          .includeVars(true)
          .keepTime(true),
      );
    for (const v of o.variables ?? []) this.builder.withVariable(v);
  }

  row(title: string): this {
    this.builder.withRow(new dashboard.RowBuilder(title).id(this.nextId++));
    return this;
  }

  panel(p: PanelBuilder): this {
    this.builder.withPanel(p.id(this.nextId++));
    return this;
  }

  build(): dashboard.Dashboard {
    return this.builder.build();
  }
}

/** A multi-value label filter with "All" matching every series, including those without the label. */
export function queryVariable(name: string, label: string, query: string): dashboard.QueryVariableBuilder {
  return new dashboard.QueryVariableBuilder(name)
    .label(label)
    .query(query)
    .datasource(DATASOURCE)
    .refresh(dashboard.VariableRefresh.OnTimeRangeChanged)
    .sort(dashboard.VariableSort.AlphabeticalAsc)
    .multi(true)
    .includeAll(true)
    .allValue('.*')
    .current({ text: 'All', value: '$__all', selected: true });
}

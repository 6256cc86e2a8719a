import type * as dashboard from '@grafana/grafana-foundation-sdk/dashboard';
import { SERVICES } from '../services';
import { masterDashboard } from './master';
import { redDashboard } from './red';

export interface DashboardFile {
  /** File name under dashboards/json/ and the chart's files/dashboards/. */
  file: string;
  build: () => dashboard.Dashboard;
}

export const DASHBOARDS: DashboardFile[] = [
  { file: 'ziggie-master.json', build: masterDashboard },
  ...SERVICES.map((s) => ({ file: `ziggie-red-${s}.json`, build: () => redDashboard(s) })),
];

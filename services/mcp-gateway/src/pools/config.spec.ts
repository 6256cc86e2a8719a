import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '@ziggie/platform';
import { mcpEnv } from '../config';
import { configuredPools, parseGpuPools } from './config';

const sdxl = {
  name: 'sdxl',
  mode: 'deployment',
  namespace: 'ziggie',
  deployment: 'ziggie-gpu-sdxl',
  scaledObject: 'ziggie-gpu-sdxl',
  minReplicas: 0,
  maxReplicas: 4,
  endpoint: 'http://ziggie-gpu-sdxl.ziggie.svc:8188',
  scaleUpTimeoutMs: 180000,
};

describe('GPU_POOLS', () => {
  it('reads the format the Helm chart renders, with defaults for what a pool leaves out', () => {
    const { scaledObject: _notForDeploymentMode, ...deployment } = sdxl;
    expect(parseGpuPools(JSON.stringify([deployment, { ...sdxl, name: 'llm', mode: 'keda' }, { name: 'tiny', mode: 'deployment', deployment: 'tiny' }]))).toEqual([
      deployment,
      { ...sdxl, name: 'llm', mode: 'keda' },
      { name: 'tiny', mode: 'deployment', deployment: 'tiny', minReplicas: 0, maxReplicas: 1, scaleUpTimeoutMs: 180_000 },
    ]);
  });

  it('takes static pools with their endpoints (`endpoint` as a one-element list), empty when none', () => {
    expect(
      parseGpuPools(
        JSON.stringify([
          { name: 'gpu', mode: 'static', endpoints: ['http://127.0.0.1:9001', 'http://127.0.0.1:9002'] },
          { name: 'comfyui', mode: 'static' },
          { name: 'one', mode: 'static', endpoint: 'http://127.0.0.1:8188' },
        ]),
      ),
    ).toEqual([
      { name: 'gpu', mode: 'static', endpoints: ['http://127.0.0.1:9001', 'http://127.0.0.1:9002'] },
      { name: 'comfyui', mode: 'static', endpoints: [] },
      { name: 'one', mode: 'static', endpoints: ['http://127.0.0.1:8188'] },
    ]);
  });

  it('names every problem of a bad list in one message', () => {
    const bad = [
      { ...sdxl, minReplicas: 5, maxReplicas: 2 },
      { name: 'Bad Name', mode: 'deployment', deployment: 'x' },
      { name: 'nodeploy', mode: 'keda' },
      { name: 'sdxl', mode: 'static', deployment: 'not-for-static' },
      { name: 'typo', mode: 'deployment', deployment: 'x', maxReplica: 3 },
      { name: 'mode', mode: 'hpa', deployment: 'x' },
    ];
    let message = '';
    try {
      parseGpuPools(JSON.stringify(bad));
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toContain('[0].minReplicas: minReplicas 5 exceeds maxReplicas 2');
    expect(message).toContain('[1].name');
    expect(message).toContain('[2].deployment');
    expect(message).toMatch(/\[3\].*deployment/);
    expect(message).toMatch(/\[4\].*maxReplica/);
    expect(message).toMatch(/\[5\].*mode/);
  });

  it('refuses a name used twice, JSON that does not parse, and values out of range', () => {
    expect(() => parseGpuPools(JSON.stringify([{ name: 'a', mode: 'static' }, { name: 'a', mode: 'static' }]))).toThrow('[1].name: pool a appears twice');
    expect(() => parseGpuPools('[{')).toThrow(/^not JSON/);
    expect(() => parseGpuPools(JSON.stringify([{ ...sdxl, scaleUpTimeoutMs: 10 }]))).toThrow('[0].scaleUpTimeoutMs');
    expect(() => parseGpuPools(JSON.stringify([{ ...sdxl, maxReplicas: -1 }]))).toThrow('[0].maxReplicas');
    expect(() => parseGpuPools(JSON.stringify([{ ...sdxl, namespace: 'Not_A_Namespace' }]))).toThrow('[0].namespace');
    expect(() => parseGpuPools(JSON.stringify({ pools: [] }))).toThrow('(root)');
  });

  describe('as mcp-gateway configuration', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ziggie-gpu-pools-'));
    afterAll(() => rmSync(dir, { recursive: true, force: true }));
    const load = (env: Record<string, string>) => loadConfig('mcp-gateway', mcpEnv, { ZIGGIE_JWT_SECRET: 'x'.repeat(32), ...env });

    it('is validated with the rest of the configuration at start-up, the problem named under the variable', () => {
      expect(configuredPools(load({ GPU_POOLS: JSON.stringify([sdxl].map(({ scaledObject: _s, ...p }) => p)) }).extra)).toHaveLength(1);
      expect(configuredPools(load({}).extra)).toEqual([]);
      expect(() => load({ GPU_POOLS: JSON.stringify([{ name: 'x', mode: 'deployment' }]) })).toThrow(/GPU_POOLS: \[0\]\.deployment/);
    });

    it('reads GPU_POOLS_FILE, naming the file when it cannot, and refuses both variables at once', () => {
      const file = join(dir, 'pools.json');
      writeFileSync(file, JSON.stringify([{ name: 'gpu', mode: 'static' }]));
      const config = load({ GPU_POOLS_FILE: file });
      expect(configuredPools(config.extra)).toEqual([{ name: 'gpu', mode: 'static', endpoints: [] }]);
      expect(() => load({ GPU_POOLS_FILE: join(dir, 'missing.json') })).toThrow(/GPU_POOLS_FILE: .*missing\.json/);
      expect(() => configuredPools(load({ GPU_POOLS_FILE: file, GPU_POOLS: '[]' }).extra)).toThrow('GPU_POOLS and GPU_POOLS_FILE are both set');
    });
  });
});

import { ConfigError, loadConfig } from '@ziggie/platform';
import { parsePools, workspaceEnv } from './config';

const base = { ZIGGIE_JWT_SECRET: 'unit-test-secret-0123456789' };

describe('workspace-coord configuration', () => {
  it('parses pools as name=capacity[:kind], inferring the kind from the name', () => {
    expect(parsePools('gpu=4,comfyui=1')).toEqual([
      { name: 'gpu', capacity: 4, kind: 'gpu' },
      { name: 'comfyui', capacity: 1, kind: 'comfyui' },
    ]);
    expect(parsePools(' llm = 8 : inference , scratch=0 ,')).toEqual([
      { name: 'llm', capacity: 8, kind: 'inference' },
      { name: 'scratch', capacity: 0, kind: 'other' },
    ]);
    expect(parsePools('')).toEqual([]);
  });

  it('refuses malformed pools, naming the entry', () => {
    expect(() => parsePools('gpu')).toThrow('"gpu" is not name=capacity[:kind]');
    expect(() => parsePools('gpu=-1')).toThrow('"gpu=-1" is not name=capacity[:kind]');
    expect(() => parsePools('gpu=2:tpu')).toThrow('pool gpu: kind "tpu" is not one of gpu, comfyui, inference, other');
    expect(() => parsePools('GPU=2')).toThrow('pool name "GPU" must match');
    expect(() => parsePools('gpu=1,gpu=2')).toThrow('pool gpu is listed twice');
  });

  it('has defaults for every variable it adds', () => {
    const { extra } = loadConfig('workspace-coord', workspaceEnv, base);
    expect(extra).toEqual({
      ZIGGIE_SEED: 'none',
      PORT_RANGE_BASE: 20_000,
      PORT_RANGE_SIZE: 100,
      POOLS: [
        { name: 'gpu', capacity: 4, kind: 'gpu' },
        { name: 'comfyui', capacity: 1, kind: 'comfyui' },
      ],
      HEALTH_WINDOW_SECONDS: 3600,
      HEALTH_FAILED_BLOCKED: 5,
      HEALTH_INTERVAL_SECONDS: 15,
      LEASE_SWEEP_INTERVAL_SECONDS: 30,
    });
  });

  it('reads every variable from the environment', () => {
    const { extra } = loadConfig('workspace-coord', workspaceEnv, {
      ...base,
      ZIGGIE_SEED: 'default',
      PORT_RANGE_BASE: '30000',
      PORT_RANGE_SIZE: '50',
      POOLS: 'gpu=8,render=2:comfyui',
      HEALTH_WINDOW_SECONDS: '600',
      HEALTH_FAILED_BLOCKED: '3',
      HEALTH_INTERVAL_SECONDS: '1',
      LEASE_SWEEP_INTERVAL_SECONDS: '2',
    });
    expect(extra).toMatchObject({
      ZIGGIE_SEED: 'default',
      PORT_RANGE_BASE: 30_000,
      PORT_RANGE_SIZE: 50,
      POOLS: [
        { name: 'gpu', capacity: 8, kind: 'gpu' },
        { name: 'render', capacity: 2, kind: 'comfyui' },
      ],
      HEALTH_WINDOW_SECONDS: 600,
      HEALTH_FAILED_BLOCKED: 3,
      HEALTH_INTERVAL_SECONDS: 1,
      LEASE_SWEEP_INTERVAL_SECONDS: 2,
    });
  });

  it('lists every bad variable at once', () => {
    const bad = { ...base, PORT_RANGE_BASE: '70000', PORT_RANGE_SIZE: '0', POOLS: 'gpu=x', HEALTH_FAILED_BLOCKED: '0', HEALTH_INTERVAL_SECONDS: 'soon' };
    let error: unknown;
    try {
      loadConfig('workspace-coord', workspaceEnv, bad);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const names = (error as ConfigError).problems.map((p) => p.split(':')[0]).sort();
    expect(names).toEqual(['HEALTH_FAILED_BLOCKED', 'HEALTH_INTERVAL_SECONDS', 'POOLS', 'PORT_RANGE_BASE', 'PORT_RANGE_SIZE']);
    expect((error as ConfigError).problems.find((p) => p.startsWith('POOLS'))).toContain('"gpu=x" is not name=capacity[:kind] (expected e.g. gpu=4,comfyui=1)');
  });
});

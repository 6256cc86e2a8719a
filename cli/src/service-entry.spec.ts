import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serviceEntry } from './stack';

describe('serviceEntry: the bundle unless a later tsc build makes it stale', () => {
  let root: string;
  const at = (path: string, seconds: number) => {
    mkdirSync(join(path, '..'), { recursive: true });
    writeFileSync(path, '');
    utimesSync(path, seconds, seconds);
  };
  const dist = () => join(root, 'services', 'orchestrator', 'dist');

  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'entry-'));
    at(join(dist(), 'main.js'), 1_000);
    for (const dir of ['services/orchestrator', 'libs/contracts', 'libs/platform']) at(join(root, dir, 'tsconfig.tsbuildinfo'), 1_000);
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  it('runs tsc\'s main.js when there is no bundle', () => {
    expect(serviceEntry('orchestrator', root)).toBe(join(dist(), 'main.js'));
  });

  it('runs the bundle when it is newer than main.js and every build-info file', () => {
    at(join(dist(), 'main.bundle.js'), 2_000);
    expect(serviceEntry('orchestrator', root)).toBe(join(dist(), 'main.bundle.js'));
    expect(serviceEntry('orchestrator', root, 'main')).toBe(join(dist(), 'main.js'));
  });

  it('runs main.js when a library was rebuilt after the bundle, though main.js itself did not change', () => {
    at(join(dist(), 'main.bundle.js'), 2_000);
    at(join(root, 'libs/contracts/tsconfig.tsbuildinfo'), 3_000);
    expect(serviceEntry('orchestrator', root)).toBe(join(dist(), 'main.js'));
  });

  it('runs main.js when the service was rebuilt after the bundle', () => {
    at(join(dist(), 'main.bundle.js'), 2_000);
    at(join(root, 'services/orchestrator/tsconfig.tsbuildinfo'), 2_500);
    expect(serviceEntry('orchestrator', root)).toBe(join(dist(), 'main.js'));
  });
});

import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { yieldBackgroundThreads } from '../src/backgroundThreads';

type Report = {
  main: string;
  before: Record<string, number>;
  lowered: number;
  after: Record<string, number>;
  later: Record<string, number>;
};

const fixture = fileURLToPath(new URL('./fixtures/yieldThreads.ts', import.meta.url));

/** The fixture in a process of its own, started at `startNice` (as `nice -n` would). */
function run(by: number, startNice = 0): Report {
  const node = [process.execPath, '--import', 'tsx', fixture, String(by)];
  const command = startNice > 0 ? ['nice', '-n', String(startNice), ...node] : node;
  const child = spawnSync(command[0]!, command.slice(1), { encoding: 'utf8', timeout: 30_000 });
  if (child.status !== 0) throw new Error(`fixture failed: ${child.stderr}`);
  return JSON.parse(child.stdout) as Report;
}

describe('yieldBackgroundThreads', () => {
  if (process.platform !== 'linux') {
    it('does nothing where nice is not per thread', () => {
      expect(yieldBackgroundThreads(7)).toBe(0);
    });
    return;
  }

  it('lowers every thread beside the main one by that much, not the main one nor threads started later', () => {
    const { main, before, lowered, after, later } = run(7);
    const base = before[main]!;
    expect(lowered).toBe(Object.keys(before).length - 1);
    for (const [tid, nice] of Object.entries(after))
      expect([tid, nice]).toEqual([tid, tid === main ? base : Math.min(19, base + 7)]);
    expect(Object.keys(later).length).toBeGreaterThan(0);
    for (const nice of Object.values(later)) expect(nice).toBe(base);
  });

  it('counts from the nice the process was started at, up to 19, and 0 changes nothing', () => {
    const started = run(7, 15);
    const base = started.before[started.main]!;
    expect(base).toBeGreaterThanOrEqual(15);
    expect(started.after[started.main]).toBe(base);
    for (const [tid, nice] of Object.entries(started.after))
      if (tid !== started.main) expect(nice).toBe(19);
    const none = run(0);
    expect(none.lowered).toBe(0);
    expect(none.after).toEqual(none.before);
  });
});

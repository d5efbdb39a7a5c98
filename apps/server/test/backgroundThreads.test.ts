import { readdirSync, readFileSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { yieldBackgroundThreads } from '../src/backgroundThreads';

/** Each thread's nice value, from /proc (field 19 of `stat`, after the command's parentheses). */
function niceByThread(): Map<number, number> {
  const nice = new Map<number, number>();
  for (const tid of readdirSync('/proc/self/task')) {
    const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
    nice.set(Number(tid), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]));
  }
  return nice;
}

describe('yieldBackgroundThreads', () => {
  it('lowers every thread running beside the main one, not the main one nor threads started later', async () => {
    if (process.platform !== 'linux') {
      expect(yieldBackgroundThreads(7)).toBe(0);
      return;
    }
    const before = niceByThread();
    const lowered = yieldBackgroundThreads(7);
    expect(lowered).toBe(before.size - 1);
    const after = niceByThread();
    for (const [tid, nice] of after)
      expect([tid, nice]).toEqual([tid, tid === process.pid ? before.get(tid) : 7]);

    // A thread started afterwards runs at the main thread's priority.
    const worker = new Worker('setInterval(() => {}, 1000)', { eval: true });
    await new Promise((resolve) => worker.once('online', resolve));
    const started = [...niceByThread()].filter(([tid]) => !after.has(tid));
    expect(started.length).toBeGreaterThan(0);
    for (const [, nice] of started) expect(nice).toBe(before.get(process.pid));
    await worker.terminate();
  });
});

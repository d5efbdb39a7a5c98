import { describe, expect, it } from 'vitest';
import { retryingDeadlocks } from './errors';

const deadlock = () => Object.assign(new Error('Deadlock found'), { errno: 1213 });

describe('retryingDeadlocks', () => {
  it('runs a deadlock victim again, up to three runs in all, and answers the run that went in', async () => {
    let runs = 0;
    const answer = await retryingDeadlocks(async () => {
      if (++runs < 3) throw deadlock();
      return 'written';
    });
    expect([answer, runs]).toEqual(['written', 3]);
  });

  it('gives up after the third deadlock, and never runs again on any other error', async () => {
    let runs = 0;
    await expect(
      retryingDeadlocks(async () => {
        runs++;
        throw deadlock();
      }),
    ).rejects.toMatchObject({ errno: 1213 });
    expect(runs).toBe(3);
    runs = 0;
    await expect(
      retryingDeadlocks(async () => {
        runs++;
        throw new Error('duplicate');
      }),
    ).rejects.toThrow('duplicate');
    expect(runs).toBe(1);
  });
});

import { setTimeout as sleep } from 'node:timers/promises';
import { tracked, type TrackedEnvelope } from '@trpc/server';
import type { TSystemInfoOutput, TTickEvent, TTicksInput } from '@mvp/contracts';
import type { Context } from '../../context';
import { AppError } from '../../errors/AppError';
import { findMetaValue } from './system.repo';

// The install id never changes once migrations ran, so one read per database is enough.
const installIds = new WeakMap<object, Promise<string>>();

async function installIdOf(ctx: Context): Promise<string> {
  let pending = installIds.get(ctx.ports.db);
  if (!pending) {
    pending = findMetaValue(ctx.ports.db, 'install_id').then((value) => {
      if (!value) throw new AppError('SERVICE_UNAVAILABLE', 'Database is not migrated');
      return value;
    });
    pending.catch(() => installIds.delete(ctx.ports.db));
    installIds.set(ctx.ports.db, pending);
  }
  return pending;
}

export async function getSystemInfo(ctx: Context): Promise<TSystemInfoOutput> {
  return {
    name: 'mvp',
    version: ctx.settings.version,
    serverTime: new Date(ctx.ports.clock.now()).toISOString(),
    installId: await installIdOf(ctx),
  };
}

/**
 * A numbered heartbeat: the smallest stream that exercises tracked ids and resume end to end.
 * Resuming after id N continues with N + 1, so a client can check it lost and repeated nothing.
 */
export async function* tickStream(
  ctx: Context,
  input: Required<Pick<NonNullable<TTicksInput>, 'intervalMs'>> & { lastEventId?: string | null },
  signal: AbortSignal | undefined,
): AsyncGenerator<TrackedEnvelope<TTickEvent>> {
  let seq = input.lastEventId ? Number(input.lastEventId) : 0;
  while (!signal?.aborted) {
    try {
      await sleep(input.intervalMs, undefined, { signal });
    } catch {
      return; // aborted: the client left or the server is shutting down
    }
    seq += 1;
    yield tracked(String(seq), { seq, at: new Date(ctx.ports.clock.now()).toISOString() });
  }
}

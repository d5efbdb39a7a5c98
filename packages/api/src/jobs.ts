import { setImmediate as turn } from 'node:timers/promises';
import { sql } from 'kysely';
import { createContext, type ApiSettings, type Context } from './context';
import { displayNameContext, phoneContext } from './modules/auth/identity';
import { deleteAccount } from './modules/me/accountDeletion';
import type { Lock, Logger, Ports } from './ports';
import { purgeExpiredMessages } from './modules/messages/expiry';
import { pruneStreams } from './modules/sync/retention';
import { expireCalls } from './modules/calls/calls.service';

const BATCH = 200;

/**
 * A job handles rows a batch (or one unit of work) at a time and returns how many. Under
 * `runLocked` it gets a signal that aborts when its lock was lost (another instance may be running
 * it too) or the server shuts down; it then stops between batches. Called directly (tests), it
 * runs to the end.
 */
type Job = (ctx: Context, signal?: AbortSignal) => Promise<number>;

/** Users looked at per statement of the re-encryption job. */
const WINDOW = 1000;

/**
 * Rows still under an older data key get re-encrypted under the newest, in id order, a window of
 * ids at a time. Which rows are under an older key only a scan can tell (the key id is inside the
 * value), and as one statement on the embedded backend that scan ran on the server's only thread
 * every jobs interval: 110 ms at 100 000 users. Each window is its own short statement, and
 * requests get a turn between windows. A row no configured key opens is reported and skipped,
 * never allowed to stall the rest.
 */
async function reencryptPersonalData(ctx: Context, signal?: AbortSignal): Promise<number> {
  const { db, cipher } = ctx.ports;
  // substr, not LIKE: key ids may contain '_', which LIKE reads as a wildcard.
  const prefix = `v1.${cipher.currentKeyId}.`;
  const notCurrent = (column: 'display_name_ciphertext' | 'phone_ciphertext') =>
    sql<boolean>`substr(${sql.ref(column)}, 1, ${prefix.length}) <> ${prefix}`;
  let done = 0;
  let after = '';
  for (;;) {
    if (signal?.aborted) return done;
    const window = await db
      .selectFrom('users')
      .select('id')
      .where('id', '>', after)
      .orderBy('id')
      .limit(WINDOW)
      .execute();
    if (window.length === 0) return done;
    const last = window[window.length - 1]!.id;
    const rows = await db
      .selectFrom('users')
      .select(['id', 'phone_ciphertext', 'display_name_ciphertext'])
      .where('id', '>', after)
      .where('id', '<=', last)
      .where((eb) =>
        eb.or([
          notCurrent('display_name_ciphertext'),
          eb.and([eb('phone_ciphertext', 'is not', null), notCurrent('phone_ciphertext')]),
        ]),
      )
      .orderBy('id')
      .execute();
    for (const row of rows) {
      if (signal?.aborted) return done;
      let name: string;
      let phone: string | null;
      try {
        const reseal = (value: string, context: string) =>
          cipher.encrypt(cipher.decrypt(value, context), context);
        name = reseal(row.display_name_ciphertext, displayNameContext(row.id));
        phone = row.phone_ciphertext && reseal(row.phone_ciphertext, phoneContext(row.id));
      } catch {
        ctx.log.error(
          { event: 'reencrypt_failed', userId: row.id },
          'no configured key opens this row',
        );
        continue;
      }
      // Only if nobody changed the row meanwhile; a skipped row is picked up next run.
      await db
        .updateTable('users')
        .set({ display_name_ciphertext: name, phone_ciphertext: phone })
        .where('id', '=', row.id)
        .where('display_name_ciphertext', '=', row.display_name_ciphertext)
        .execute();
      done += 1;
    }
    if (window.length < WINDOW) return done;
    after = last;
    await turn();
  }
}

/** Deletes accounts nobody has used for the configured number of days (off when 0). */
async function deleteInactiveAccounts(ctx: Context, signal?: AbortSignal): Promise<number> {
  const days = ctx.settings.auth.deleteInactiveAfterDays;
  if (days <= 0) return 0;
  const cutoff = ctx.ports.clock.now() - days * 24 * 3600 * 1000;
  const { db } = ctx.ports;
  const stale = await db
    .selectFrom('users')
    .select('id')
    .where('last_active_at', '<', cutoff)
    .limit(BATCH)
    .execute();
  let deleted = 0;
  // One at a time through the same path as a user's own deletion: sessions end, avatars go.
  for (const { id } of stale) {
    if (signal?.aborted) break;
    if (await deleteAccount(ctx, id, { inactiveBefore: cutoff })) deleted += 1;
  }
  if (deleted)
    ctx.log.info(
      { event: 'inactive_accounts_deleted', count: deleted },
      'inactive accounts deleted',
    );
  return deleted;
}

/** How long an ended session (signed out, revoked, expired) is kept before it is deleted. */
const ENDED_SESSIONS_KEPT_DAYS = 30;
/** Refresh tokens deleted per statement. */
const TOKEN_BATCH = 1000;

/**
 * Deletes sessions that ended over ENDED_SESSIONS_KEPT_DAYS ago, with their refresh tokens (one
 * row per rotation: a device that stays signed in adds one every access token's lifetime, and
 * without this they were kept for ever). A live session keeps its used tokens: replaying one
 * is how a leak is caught. Nothing tells a deleted session from an ended one: both are refused.
 * The tokens go first, a batch at a time: left to the cascade, a month-old session's thousands
 * went in one statement (on the embedded backend, on the server's only thread).
 */
async function pruneEndedSessions(ctx: Context, signal?: AbortSignal): Promise<number> {
  const { db } = ctx.ports;
  const cutoff = ctx.ports.clock.now() - ENDED_SESSIONS_KEPT_DAYS * 24 * 3600 * 1000;
  let deleted = 0;
  for (;;) {
    if (signal?.aborted) return deleted;
    const ended = (
      await db
        .selectFrom('sessions')
        .select('id')
        .where((eb) => eb.or([eb('expires_at', '<', cutoff), eb('revoked_at', '<', cutoff)]))
        .limit(BATCH)
        .execute()
    ).map((s) => s.id);
    if (ended.length === 0) return deleted;
    for (;;) {
      if (signal?.aborted) return deleted;
      const tokens = (
        await db
          .selectFrom('refresh_tokens')
          .select('token_hash')
          .where('session_id', 'in', ended)
          .limit(TOKEN_BATCH)
          .execute()
      ).map((t) => t.token_hash);
      if (tokens.length > 0)
        await db.deleteFrom('refresh_tokens').where('token_hash', 'in', tokens).execute();
      if (tokens.length < TOKEN_BATCH) break;
      await turn();
    }
    await db.deleteFrom('sessions').where('id', 'in', ended).execute();
    deleted += ended.length;
    if (ended.length < BATCH) return deleted;
    await turn();
  }
}

export const JOBS = {
  reencryptPersonalData,
  deleteInactiveAccounts,
  pruneStreams,
  pruneEndedSessions,
} as const satisfies Record<string, Job>;
export type JobName = keyof typeof JOBS;

const JOBS_LOCK_MS = 10 * 60 * 1000;

/**
 * Renews `lock` every third of its lease while a job runs, so that a run may outlive the lease.
 * The signal aborts when a renewal finds the lock gone (this instance stalled past the lease and
 * another may have taken it) or cannot tell, and when `stop` aborts (the server shuts down: the
 * job ends between batches, as for a lost lock, but nothing was lost); `end` ends the renewals
 * once the run is over.
 */
function keepRenewed(
  lock: Lock,
  lockMs: number,
  logger: Logger,
  job: string,
  stop: AbortSignal | undefined,
) {
  const lost = new AbortController();
  const lose = (err?: unknown) => {
    if (lost.signal.aborted) return;
    clearInterval(renewals);
    lost.abort();
    logger.warn({ err, job, event: 'job_lock_lost' }, 'job lock lost: stopping after this batch');
  };
  const renewals = setInterval(() => {
    lock.extend(lockMs).then((held) => {
      if (!held) lose();
    }, lose);
  }, lockMs / 3);
  renewals.unref();
  const stopped = () => lost.abort();
  stop?.addEventListener('abort', stopped, { once: true });
  return {
    signal: lost.signal,
    end() {
      clearInterval(renewals);
      // Not left on `stop`, which lives as long as the server: one listener per run would pile up.
      stop?.removeEventListener('abort', stopped);
      // A renewal still in flight then answers after the release: that is not a loss.
      lost.abort();
    },
  };
}

/**
 * Gives the lock back. A release that fails (the KeyValue store unreachable) leaves the lock to
 * expire with its lease; it must not turn into an unhandled rejection of the run. Logged with the
 * message only: a Redis client's error carries the command's arguments, the lock's token among them.
 */
async function release(lock: Lock, logger: Logger, job: string): Promise<void> {
  try {
    await lock.release();
  } catch (err) {
    logger.warn(
      {
        job,
        event: 'job_lock_release_failed',
        reason: err instanceof Error ? err.message : 'unknown',
      },
      'job lock not released: it expires with its lease',
    );
  }
}

/**
 * Runs `job` under the KeyValue lock of `name`, renewed while it runs. Null when it did not run:
 * another instance holds the lock, `stop` has aborted (the server shuts down), or the job failed.
 * The lock outlives an instance that dies holding it by `lockMs`: a loop that runs every second
 * passes a shorter one than the jobs, or a crash would stop it everywhere for ten minutes.
 */
async function runLocked(
  ports: Ports,
  settings: ApiSettings,
  name: string,
  job: Job,
  lockMs: number,
  stop: AbortSignal | undefined,
): Promise<number | null> {
  if (stop?.aborted) return null;
  const lock = await ports.kv.acquireLock(`job:${name}`, lockMs);
  if (!lock) return null;
  const renewal = keepRenewed(lock, lockMs, ports.logger, name, stop);
  try {
    // Stopped while the lock was on its way: give it straight back, another instance runs it.
    if (stop?.aborted) return null;
    const ctx = await createContext(ports, settings, {
      requestId: `job:${name}`,
      ip: 'internal',
      transport: 'http',
      token: null,
    });
    return await job(ctx, renewal.signal);
  } catch (err) {
    ports.logger.error({ err, job: name }, 'job failed');
    return null;
  } finally {
    renewal.end();
    await release(lock, ports.logger, name);
  }
}

/**
 * Runs every job once, each under a KeyValue lock so that across instances only one runs it at a
 * time. Returns how many rows each job handled (null when it did not run, see runLocked).
 * `lockMs` is the lease (renewed while a job runs); tests pass a short one. When `stop` aborts,
 * the job in progress ends after its batch and the ones after it do not start.
 */
export async function runJobsOnce(
  ports: Ports,
  settings: ApiSettings,
  lockMs = JOBS_LOCK_MS,
  stop?: AbortSignal,
): Promise<Record<JobName, number | null>> {
  const results = {} as Record<JobName, number | null>;
  for (const name of Object.keys(JOBS) as JobName[])
    results[name] = await runLocked(ports, settings, name, JOBS[name], lockMs, stop);
  return results;
}

/** A frequent loop's run is one batch (up to 500 rows): far shorter than this, and renewed. */
const FREQUENT_LOCK_MS = 60 * 1000;

/** Ring and heartbeat timeouts need seconds, not the jobs interval: their own, faster loop. */
export function runCallTimeoutsOnce(
  ports: Ports,
  settings: ApiSettings,
  stop?: AbortSignal,
): Promise<number | null> {
  return runLocked(ports, settings, 'expireCalls', expireCalls, FREQUENT_LOCK_MS, stop);
}

/**
 * Disappearing messages must go when their timer says, as they do in Signal, not up to a jobs
 * interval (a minute) later: their own loop, about every second. A run with nothing due is one
 * indexed read (and the lock).
 */
export function runMessageExpiryOnce(
  ports: Ports,
  settings: ApiSettings,
  stop?: AbortSignal,
): Promise<number | null> {
  return runLocked(
    ports,
    settings,
    'purgeExpiredMessages',
    purgeExpiredMessages,
    FREQUENT_LOCK_MS,
    stop,
  );
}

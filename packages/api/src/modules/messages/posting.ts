import type { Kysely } from 'kysely';
import type { DB } from '@mvp/db';
import type { Context } from '../../context';
import type { CachedPosting } from '../../ports';
import { AppError } from '../../errors/AppError';
import * as repo from './messages.repo';

export const ADMINS: readonly string[] = ['owner', 'admin'];

export function decodeCiphertext(ctx: Context, ciphertext: string): Buffer {
  const bytes = Buffer.from(ciphertext, 'base64');
  const max = ctx.settings.messaging.maxCiphertextBytes;
  if (bytes.length > max)
    throw new AppError('PAYLOAD_TOO_LARGE', `Ciphertext larger than ${max} bytes`);
  return bytes;
}

type PostingRow = NonNullable<Awaited<ReturnType<typeof repo.postingContext>>>;
/** What a post is decided on; `lastPostAt` only when read fresh (the cache leaves it out). */
export type Posting = CachedPosting & { lastPostAt: number | null };

export function toPosting(row: PostingRow): Posting {
  return {
    kind: row.kind,
    role: row.role,
    slowModeSeconds: Number(row.slow_mode_seconds),
    disappearSeconds: Number(row.disappear_seconds),
    blocked: row.kind === 'direct' && Boolean(Number(row.blocked)),
    lastSeq: Number(row.last_seq),
    lastPostAt: row.last_post_at === null ? null : Number(row.last_post_at),
  };
}

/** The conversation and my membership, with what posting checks; NOT_FOUND if not a member. */
export async function postingContext(
  ctx: Context,
  conversationId: string,
  me: string,
  db: Kysely<DB> = ctx.ports.db,
): Promise<Posting> {
  const row = await repo.postingContext(db, conversationId, me);
  if (!row) throw new AppError('NOT_FOUND', 'No such conversation');
  return toPosting(row);
}

/**
 * What any change the other members see needs (reactions, pins; posting adds more): never from a
 * restricted (read-only) member, never across a block in a direct conversation.
 */
export function assertMayReach(posting: CachedPosting): void {
  if (posting.role === 'restricted') throw new AppError('FORBIDDEN', 'You can only read here');
  if (posting.blocked) throw new AppError('FORBIDDEN', 'You cannot message this user');
}

/** Who may write into the conversation (messages, typing): in a channel only its admins. */
export function assertMaySpeak(posting: CachedPosting): void {
  assertMayReach(posting);
  if (posting.kind === 'channel' && !ADMINS.includes(posting.role))
    throw new AppError('FORBIDDEN', 'Only admins post in a channel');
}

/** Slow mode spaces out one member's messages; admins are exempt. */
export const slowedDown = (posting: CachedPosting): boolean =>
  posting.slowModeSeconds > 0 && !ADMINS.includes(posting.role);

/** Who may post: see assertMaySpeak. In slow mode, not before the wait (answered). */
export function assertMayPost(ctx: Context, posting: Posting): void {
  assertMaySpeak(posting);
  if (slowedDown(posting) && posting.lastPostAt !== null) {
    const waitMs = posting.lastPostAt + posting.slowModeSeconds * 1000 - ctx.ports.clock.now();
    if (waitMs > 0)
      throw new AppError('TOO_MANY_REQUESTS', 'Slow mode: wait before sending again', {
        retryAfterMs: waitMs,
      });
  }
}

import type { Transaction, Updateable } from 'kysely';
import type { TMessage } from '@mvp/contracts';
import { isUniqueViolation, retryingDeadlocks, type DB, type MessagesTable } from '@mvp/db';
import type { Context } from '../../context';
import { AppError } from '../../errors/AppError';
import { locking } from '../../locking';
import { recordEvents, wake } from '../sync/events';
import * as repo from './messages.repo';
import { ADMINS, assertMaySpeak, decodeCiphertext, postingContext, type Posting } from './posting';
import { lockedAudience, ownMessageNow, visibleMessage, type MessageRef } from './visibleMessage';

export type { MessageRef } from './visibleMessage';

/**
 * Applies a change to one message and tells, with `message.updated`, every member whose history
 * shows it (see lockedAudience: who they are as of the change, not of the checks before it). Not
 * those who joined after it: the event carries the message, and an edit is sealed under the
 * current sender key, which they hold. `allowed` checks my role again under the same lock.
 *
 * Only while the message is not deleted: the caller checked that before the transaction, but a
 * deletion may have committed since, and an edit written over it would put content back on the
 * tombstone. Then nothing is written and `changed` is false. A message purged meanwhile (its
 * timer ran out) is NOT_FOUND.
 */
async function updateAndTell(
  ctx: Context,
  me: string,
  ref: MessageRef,
  change: Updateable<MessagesTable>,
  also: {
    allowed?: (role: string) => void;
    /** What the caller checked of my posting, checked again under the lock. */
    mayStill?: (posting: Posting) => void;
    extra?: (trx: Transaction<DB>) => Promise<void>;
  } = {},
): Promise<{ message: TMessage; changed: boolean }> {
  const now = ctx.ports.clock.now();
  // A deadlock victim (see toldOnce) runs again.
  const { row, told } = await retryingDeadlocks(() =>
    ctx.ports.db.transaction().execute(async (trx) => {
      const { role, members } = await lockedAudience(ctx, trx, ref, me);
      also.allowed?.(role);
      if (also.mayStill) also.mayStill(await postingContext(ctx, ref.conversationId, me, trx));
      // An UPDATE reads the latest commit (and waits for one in progress), also on MySQL.
      const result = await trx
        .updateTable('messages')
        .set(change)
        .where('conversation_id', '=', ref.conversationId)
        .where('seq', '=', ref.seq)
        .where('deleted_at', 'is', null)
        .executeTakeFirst();
      // Locking: the latest commit, not the snapshot lockedAudience's reads took (a purge since
      // would otherwise still show the row).
      const current = await locking(
        ctx,
        repo.messageAt(trx, ref.conversationId, ref.seq),
      ).executeTakeFirst();
      if (!current) throw new AppError('NOT_FOUND', 'No such message');
      if (Number(result.numUpdatedRows) === 0) return { row: current, told: undefined };
      await also.extra?.(trx);
      await recordEvents(
        trx,
        members,
        { type: 'message.updated', message: repo.toMessage(current) },
        now,
      );
      return { row: current, told: members };
    }),
  );
  if (told) await wake(ctx.ports, told);
  const message = (await repo.describeMessages(ctx.ports.db, [row]))[0]!;
  return { message, changed: told !== undefined };
}

/**
 * My message as it is now, if I applied the edit `clientEditId` to it before. Like a resent
 * send, it answers even where a new edit would be refused (deleted since, or I left), and shows
 * who reacted only while my history shows the message (see ownMessageNow).
 */
async function editedBefore(
  ctx: Context,
  me: string,
  ref: MessageRef,
  clientEditId: string,
): Promise<TMessage | undefined> {
  const applied = await ctx.ports.db
    .selectFrom('message_edits as e')
    .innerJoin('messages as m', (join) =>
      join.onRef('m.conversation_id', '=', 'e.conversation_id').onRef('m.seq', '=', 'e.seq'),
    )
    .select('e.seq')
    .where('e.conversation_id', '=', ref.conversationId)
    .where('e.seq', '=', ref.seq)
    .where('e.client_edit_id', '=', clientEditId)
    .where('m.sender_id', '=', me)
    .executeTakeFirst();
  return applied ? ownMessageNow(ctx, me, ref) : undefined;
}

/**
 * The sender replaces the ciphertext; `editedAt` shows it. A deleted message stays deleted. An
 * edit named by `clientEditId` is applied once: the same id again answers the message as it is
 * (a later edit's, or a tombstone) and tells no one.
 */
export async function editMessage(
  ctx: Context,
  me: string,
  input: MessageRef & { contentType: string; ciphertext: string; clientEditId?: string },
): Promise<TMessage> {
  const bytes = decodeCiphertext(ctx, input.ciphertext);
  const { clientEditId } = input;
  if (clientEditId !== undefined) {
    const before = await editedBefore(ctx, me, input, clientEditId);
    if (before) return before;
  }
  const { row } = await visibleMessage(ctx, me, input);
  if (row.sender_id !== me) throw new AppError('FORBIDDEN', 'Only the sender edits a message');
  if (row.deleted_at !== null) throw new AppError('BAD_REQUEST', 'This message was deleted');
  // Not assertMayPost: an edit takes no slow-mode slot, so the wait for the next one is no bar.
  assertMaySpeak(await postingContext(ctx, input.conversationId, me));
  const now = ctx.ports.clock.now();
  const named = async (trx: Transaction<DB>) => {
    await trx
      .insertInto('message_edits')
      .values({
        conversation_id: input.conversationId,
        seq: input.seq,
        client_edit_id: clientEditId!,
        created_at: now,
      })
      .execute();
  };
  let edited;
  try {
    edited = await updateAndTell(
      ctx,
      me,
      input,
      { ciphertext: bytes, content_type: input.contentType, edited_at: now },
      // Restricted, demoted in a channel or blocked since the check above: no edit.
      { mayStill: assertMaySpeak, extra: clientEditId === undefined ? undefined : named },
    );
  } catch (err) {
    // The same edit, retried while this one was on its way, got in first: its answer is ours.
    const before =
      clientEditId !== undefined && isUniqueViolation(err)
        ? await editedBefore(ctx, me, input, clientEditId)
        : undefined;
    if (!before) throw err;
    return before;
  }
  if (!edited.changed) {
    // Deleted since the check above, perhaps after this very edit (retried meanwhile) went in:
    // then its answer is the tombstone; otherwise refused as if the check had seen it.
    const before =
      clientEditId === undefined ? undefined : await editedBefore(ctx, me, input, clientEditId);
    if (!before) throw new AppError('BAD_REQUEST', 'This message was deleted');
    return before;
  }
  return edited.message;
}

/**
 * Deletes for everyone (the sender, or an admin of a group or channel): the bytes go, a tombstone
 * keeps the seq in order, and its reactions and pin go too.
 */
export async function deleteForEveryone(
  ctx: Context,
  me: string,
  ref: MessageRef,
): Promise<TMessage> {
  const { conversation, membership, row } = await visibleMessage(ctx, me, ref);
  const assertMayDeleteOthers = (role: string) => {
    if (conversation.kind === 'direct' || !ADMINS.includes(role))
      throw new AppError('FORBIDDEN', 'Only the sender or an admin deletes for everyone');
  };
  if (row.sender_id !== me) assertMayDeleteOthers(membership.role);
  if (row.deleted_at !== null) return (await repo.describeMessages(ctx.ports.db, [row]))[0]!;
  // Deleted by someone else meanwhile: the same tombstone, told once.
  const { message } = await updateAndTell(
    ctx,
    me,
    ref,
    { ciphertext: null, deleted_at: ctx.ports.clock.now() },
    {
      // Someone else's message: only while I am still an admin.
      allowed: row.sender_id === me ? undefined : assertMayDeleteOthers,
      extra: async (trx) => {
        for (const table of ['reactions', 'pins'] as const) {
          await trx
            .deleteFrom(table)
            .where('conversation_id', '=', ref.conversationId)
            .where('seq', '=', ref.seq)
            .execute();
        }
      },
    },
  );
  return message;
}

/** Hides a message from my history on all my devices; everyone else keeps it. */
export async function deleteForMe(ctx: Context, me: string, ref: MessageRef): Promise<void> {
  await visibleMessage(ctx, me, ref);
  const now = ctx.ports.clock.now();
  try {
    await ctx.ports.db.transaction().execute(async (trx) => {
      await trx
        .insertInto('message_hidden')
        .values({ user_id: me, conversation_id: ref.conversationId, seq: ref.seq })
        .execute();
      await recordEvents(
        trx,
        [me],
        {
          type: 'messages.removed',
          conversationId: ref.conversationId,
          seqs: [ref.seq],
          reason: 'deleted_for_me',
        },
        now,
      );
    });
  } catch (err) {
    if (!isUniqueViolation(err)) throw err; // already hidden: nothing to do
    return;
  }
  await wake(ctx.ports, [me]);
}

import type {
  ExpressionBuilder,
  ExpressionWrapper,
  SqlBool,
  Transaction,
  Updateable,
} from 'kysely';
import type { TMessage } from '@mvp/contracts';
import { isUniqueViolation, type DB, type MessagesTable } from '@mvp/db';
import type { Context } from '../../context';
import { AppError } from '../../errors/AppError';
import { memberIdsSeeing } from '../conversations/conversations.repo';
import { recordEvents, wake } from '../sync/events';
import * as repo from './messages.repo';
import { ADMINS, assertMaySpeak, decodeCiphertext, postingContext } from './posting';
import { visibleMessage, type MessageRef } from './visibleMessage';

export type { MessageRef } from './visibleMessage';

/**
 * Applies a change to one message and tells, with `message.updated`, every member whose history
 * shows it. Not those who joined after it: the event carries the message, and an edit is sealed
 * under the current sender key, which they hold.
 *
 * Only while the message is not deleted: the caller checked that before the transaction, but a
 * deletion may have committed since, and an edit written over it would put content back on the
 * tombstone. Then nothing is written and `changed` is false, as when the row fails `onlyIf`. A
 * message purged meanwhile (its timer ran out) is NOT_FOUND.
 */
async function updateAndTell(
  ctx: Context,
  ref: MessageRef,
  change: Updateable<MessagesTable>,
  options: {
    extra?: (trx: Transaction<DB>) => Promise<void>;
    onlyIf?: (eb: ExpressionBuilder<DB, 'messages'>) => ExpressionWrapper<DB, 'messages', SqlBool>;
  } = {},
): Promise<{ message: TMessage; changed: boolean }> {
  const now = ctx.ports.clock.now();
  const members = await memberIdsSeeing(ctx.ports.db, ref.conversationId, ref.seq);
  const { row, changed } = await ctx.ports.db.transaction().execute(async (trx) => {
    // An UPDATE reads the latest commit (and waits for one in progress), also on MySQL.
    const result = await trx
      .updateTable('messages')
      .set(change)
      .where('conversation_id', '=', ref.conversationId)
      .where('seq', '=', ref.seq)
      .where('deleted_at', 'is', null)
      .$if(options.onlyIf !== undefined, (q) => q.where(options.onlyIf!))
      .executeTakeFirst();
    const current = await repo.findMessage(trx, ref.conversationId, ref.seq);
    if (!current) throw new AppError('NOT_FOUND', 'No such message');
    if (Number(result.numUpdatedRows) === 0) return { row: current, changed: false };
    await options.extra?.(trx);
    await recordEvents(
      trx,
      members,
      { type: 'message.updated', message: repo.toMessage(current) },
      now,
    );
    return { row: current, changed: true };
  });
  if (changed) await wake(ctx.ports, members);
  return { message: (await repo.describeMessages(ctx.ports.db, [row]))[0]!, changed };
}

/**
 * The sender replaces the ciphertext; `editedAt` shows it. A deleted message stays deleted. The
 * bytes and content type the message has already change nothing: the answer is the message as it
 * is, and no event goes out (a retry is safe; an encrypted edit's bytes are never sent twice).
 */
export async function editMessage(
  ctx: Context,
  me: string,
  input: MessageRef & { contentType: string; ciphertext: string },
): Promise<TMessage> {
  const bytes = decodeCiphertext(ctx, input.ciphertext);
  const { row } = await visibleMessage(ctx, me, input);
  if (row.sender_id !== me) throw new AppError('FORBIDDEN', 'Only the sender edits a message');
  if (row.deleted_at !== null) throw new AppError('BAD_REQUEST', 'This message was deleted');
  // Not assertMayPost: an edit takes no slow-mode slot, so the wait for the next one is no bar.
  assertMaySpeak(await postingContext(ctx, input.conversationId, me));
  const { message, changed } = await updateAndTell(
    ctx,
    input,
    { ciphertext: bytes, content_type: input.contentType, edited_at: ctx.ports.clock.now() },
    {
      // The same edit again (an outbox retrying after a lost answer): nothing to change or tell.
      // In the UPDATE itself, so two copies racing still tell the members once.
      onlyIf: (eb) =>
        eb.or([eb('ciphertext', '!=', bytes), eb('content_type', '!=', input.contentType)]),
    },
  );
  // Deleted since the check above: refused as if the check had seen it.
  if (!changed && message.deletedAt !== null)
    throw new AppError('BAD_REQUEST', 'This message was deleted');
  return message;
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
  const admin = conversation.kind !== 'direct' && ADMINS.includes(membership.role);
  if (row.sender_id !== me && !admin)
    throw new AppError('FORBIDDEN', 'Only the sender or an admin deletes for everyone');
  if (row.deleted_at !== null) return (await repo.describeMessages(ctx.ports.db, [row]))[0]!;
  // Deleted by someone else meanwhile: the same tombstone, told once.
  const { message } = await updateAndTell(
    ctx,
    ref,
    { ciphertext: null, deleted_at: ctx.ports.clock.now() },
    {
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

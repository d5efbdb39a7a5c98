import { newId } from '../../ids';
import type { TEnvelope } from '@mvp/contracts';
import type { Context } from '../../context';
import { AppError } from '../../errors/AppError';
import { assertCompleteDeviceSets } from '../keys/keys.service';
import { appendEvents } from './stream.repo';
import { wake } from './events';

type Device = { userId: string; deviceId: string };
type Outgoing = Device & { contentType: string; ciphertext: string };

/**
 * Stores opaque envelopes for single devices (Signal's store-until-ack): each lands on its owner's
 * stream, readable only by that device, and stays until the device acks it or it expires with
 * the stream's retention. Recipients who blocked the sender drop it without telling the sender,
 * and so do those not in the conversation the envelopes are said to concern.
 *
 * A device whose queue is full gets nothing and is named in `full`; the others still get theirs.
 * Anyone may fill a device's queue (envelopes need no contact: first keys, calls), and when one
 * full device refused the whole batch, a key share to a group failed for every member of it.
 * Only when every device named is full is the call refused (TOO_MANY_REQUESTS). A queue is full
 * for one sender already at `deviceQueueSenderCap` of theirs, so a single account cannot fill
 * it for everyone else.
 */
export async function sendToDevices(
  ctx: Context,
  sender: Device,
  envelopes: Outgoing[],
  options: { allDevices: boolean; conversationId?: string } = { allDevices: false },
): Promise<{ ids: string[]; full: string[] }> {
  const db = ctx.ports.db;
  const { maxCiphertextBytes, deviceQueueCap, deviceQueueSenderCap } = ctx.settings.messaging;
  const decoded = envelopes.map((e) => ({ ...e, bytes: Buffer.from(e.ciphertext, 'base64') }));
  if (decoded.some((e) => e.bytes.length > maxCiphertextBytes))
    throw new AppError('PAYLOAD_TOO_LARGE', `Ciphertext larger than ${maxCiphertextBytes} bytes`);

  const recipients = [...new Set(envelopes.map((e) => e.userId))];
  const { conversationId } = options;
  const outsiders = new Set<string>();
  if (conversationId !== undefined) {
    const members = new Set(
      (
        await db
          .selectFrom('conversation_members')
          .select('user_id')
          .where('conversation_id', '=', conversationId)
          .where('user_id', 'in', [sender.userId, ...recipients])
          .execute()
      ).map((m) => m.user_id),
    );
    if (!members.has(sender.userId)) throw new AppError('NOT_FOUND', 'No such conversation');
    // Someone who left meanwhile: dropped unannounced, as a block is (a distribution racing a
    // leave must not fail for the members who stay).
    for (const userId of recipients) if (!members.has(userId)) outsiders.add(userId);
  }

  const deviceIds = [...new Set(envelopes.map((e) => e.deviceId))];
  const known = await db
    .selectFrom('devices')
    .select(['id', 'user_id'])
    .where('id', 'in', deviceIds)
    .execute();
  const owner = new Map(known.map((d) => [d.id, d.user_id]));
  if (options.allDevices) await assertCompleteDeviceSets(ctx, sender, envelopes);
  else if (envelopes.some((e) => owner.get(e.deviceId) !== e.userId))
    throw new AppError('NOT_FOUND', 'No such device');

  const blockers = await db
    .selectFrom('blocks')
    .select('blocker_id')
    .where('blocked_id', '=', sender.userId)
    .where('blocker_id', 'in', recipients)
    .execute();
  const dropped = new Set([...blockers.map((b) => b.blocker_id), ...outsiders]);

  // Envelopes only: a device's other rows of its own (a call's invite) are not acked away, and
  // counted, calls placed and cancelled would fill the queue against every key share.
  const pending = await db
    .selectFrom('user_events')
    .select(['device_id', (eb) => eb.fn.countAll<number>().as('n')])
    .where('device_id', 'in', deviceIds)
    .where('type', '=', 'envelope')
    .groupBy('device_id')
    .execute();
  const queued = new Map(pending.map((p) => [p.device_id, Number(p.n)]));
  const adding = (id: string) => envelopes.filter((e) => e.deviceId === id).length;
  // Only a queue holding more than the sender's cap can hold too many of the sender's: the
  // others need no count of theirs, which reads every queued envelope's JSON.
  const crowded = deviceIds.filter(
    (id) => (queued.get(id) ?? 0) + adding(id) > deviceQueueSenderCap,
  );
  const mine = crowded.length
    ? await db
        .selectFrom('user_events')
        .select(['device_id', (eb) => eb.fn.countAll<number>().as('n')])
        .where('device_id', 'in', crowded)
        .where('type', '=', 'envelope')
        // The sender is inside the stored JSON only. A LIKE on it works alike on both dialects
        // (their JSON functions differ), and is exact: ids are UUIDs, without LIKE's wildcards,
        // and nothing else in an envelope's JSON can hold a quote (base64 ciphertext, checked
        // content types).
        .where('payload', 'like', `%"senderId":"${sender.userId}"%`)
        .groupBy('device_id')
        .execute()
    : [];
  const queuedFromMe = new Map(mine.map((p) => [p.device_id, Number(p.n)]));
  const full = deviceIds.filter(
    (id) =>
      (queued.get(id) ?? 0) + adding(id) > deviceQueueCap ||
      (queuedFromMe.get(id) ?? 0) + adding(id) > deviceQueueSenderCap,
  );
  if (full.length === deviceIds.length)
    throw new AppError('TOO_MANY_REQUESTS', 'That device has too many undelivered envelopes');

  const now = ctx.ports.clock.now();
  const sentAt = new Date(now).toISOString();
  const stored = decoded.map((e) => {
    const envelope: TEnvelope = {
      id: newId(),
      senderId: sender.userId,
      senderDeviceId: sender.deviceId,
      contentType: e.contentType,
      ciphertext: e.ciphertext,
      sentAt,
      ...(conversationId !== undefined ? { conversationId } : {}),
    };
    return { ...e, envelope };
  });
  const delivered = stored.filter((e) => !dropped.has(e.userId) && !full.includes(e.deviceId));
  await db.transaction().execute((trx) =>
    appendEvents(
      trx,
      delivered.map((e) => ({
        userId: e.userId,
        deviceId: e.deviceId,
        event: { type: 'envelope', payload: { envelope: e.envelope } },
      })),
      now,
    ),
  );
  await wake(
    ctx.ports,
    delivered.map((e) => e.userId),
  );
  // Dropped ones get ids too: the sender cannot tell a block from a delivery.
  return { ids: stored.map((e) => e.envelope.id), full };
}

/**
 * This device has what it needs up to `upTo`: its envelopes there are deleted. Only envelopes:
 * its other events of its own (a call's invite) stay for the stream's retention, as a cold
 * start's snapshot lists a call still ringing by its invite.
 */
export async function ack(ctx: Context, me: Device, upTo: number): Promise<void> {
  await ctx.ports.db
    .deleteFrom('user_events')
    .where('user_id', '=', me.userId)
    .where('device_id', '=', me.deviceId)
    .where('seq', '<=', upTo)
    .where('type', '=', 'envelope')
    .execute();
}

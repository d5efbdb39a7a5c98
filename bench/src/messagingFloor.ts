import { ZMessage, ZSendMessageInput } from '@mvp/contracts';
import type { MessagingBaselinePayload } from './messagingBaseline';
import { createSendRelay, describe, type SendInput } from './messagingRelay';
import { createFloor } from './trpcFloor';

/**
 * The tRPC floor of messaging (see trpcFloor.ts): the raw server's sends without storage
 * (messagingRelay.ts: counters in memory) behind the MVP's `messages.send`, each message
 * delivered as one shared `message.new` event to every member's `sync.events`.
 */
export async function startMessagingFloor(payload: MessagingBaselinePayload) {
  const users = Object.fromEntries(
    Object.entries(payload.users).map(([token, userId]) => [token, { userId }]),
  );
  const floor = createFloor(users, (me) => me.userId);
  const relay = createSendRelay(payload.conversations);
  const { t } = floor;
  return floor.serve(
    t.router({
      messages: t.router({
        send: floor.mutation(ZSendMessageInput, ZMessage, (me, input) => {
          const { row, members, seqs } = relay.send(me.userId, input as SendInput);
          const message = describe(row);
          floor.deliver(members, seqs, { type: 'message.new', message });
          return message;
        }),
      }),
      sync: t.router({ events: floor.events }),
    }),
  );
}

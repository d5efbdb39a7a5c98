import {
  ZConversationPage,
  ZConversationPageInput,
  ZEventId,
  ZOk,
  ZPendingEnvelopes,
  ZPendingEnvelopesInput,
  ZSendToDevicesInput,
  ZSnapshot,
  ZSnapshotInput,
  ZSyncEvent,
  ZSyncEventsInput,
} from '@mvp/contracts';
import { z } from 'zod';
import { authedProcedure, router } from '../../trpc';
import { ack, sendToDevices } from './envelopes';
import { pollEvents } from './poll';
import { conversationPage, pendingEnvelopes, snapshot } from './sync.service';
import { syncStream } from './syncStream';

const tags = ['sync'];

export const syncRouter = router({
  /** Cold start: conversations, unread counts, pending requests, and the cursor to stream from. */
  snapshot: authedProcedure
    .meta({
      openapi: {
        method: 'GET',
        path: '/sync/snapshot',
        summary: 'Everything to show, and a cursor',
        tags,
      },
    })
    .input(ZSnapshotInput)
    .output(ZSnapshot)
    .query(({ ctx, input }) =>
      snapshot(ctx, ctx.auth, {
        envelopes: input?.pagedEnvelopes === true,
        conversations: input?.pagedConversations === true,
      }),
    ),

  /** The rest of a snapshot's `conversations` when it says `moreConversations`, a page at a time. */
  conversations: authedProcedure
    .meta({
      openapi: {
        method: 'GET',
        path: '/sync/conversations',
        summary: "My conversations after a snapshot's first page",
        tags,
      },
    })
    .input(ZConversationPageInput)
    .output(ZConversationPage)
    .query(({ ctx, input }) => conversationPage(ctx, ctx.auth.userId, input.after)),

  /** The rest of a snapshot's `pendingEnvelopes` when it says `moreEnvelopes`, a page at a time. */
  pendingEnvelopes: authedProcedure
    .meta({
      openapi: {
        method: 'GET',
        path: '/sync/envelopes',
        summary: "Envelopes waiting for this device, after a snapshot's first page",
        tags,
      },
    })
    .input(ZPendingEnvelopesInput)
    .output(ZPendingEnvelopes)
    .query(({ ctx, input }) =>
      pendingEnvelopes(ctx, ctx.auth, Number(input.after), Number(input.upTo)),
    ),

  /** The device's live stream: resumes exactly after `lastEventId` (tRPC sends it on reconnect). */
  events: authedProcedure
    .input(ZSyncEventsInput)
    .subscription(({ ctx, input, signal }) => syncStream(ctx, ctx.auth, input.lastEventId, signal)),

  /** Opaque envelopes to single devices, kept until each device acks them. */
  sendToDevices: authedProcedure
    .meta({
      openapi: { method: 'POST', path: '/sync/to-devices', summary: 'Send to devices', tags },
      accountBudget: 'send',
    })
    .input(ZSendToDevicesInput)
    .output(
      z.object({
        /** One per envelope, in order. */
        ids: z.array(z.string()),
        /** Devices whose queue was full: their envelopes were not stored. */
        full: z.array(z.string()),
      }),
    )
    .mutation(({ ctx, input }) =>
      sendToDevices(ctx, ctx.auth, input.envelopes, {
        allDevices: input.allDevices,
        ...(input.conversationId ? { conversationId: input.conversationId } : {}),
      }),
    ),

  /** This device has handled its envelopes up to this event id; they are deleted. */
  ack: authedProcedure
    .meta({
      openapi: { method: 'POST', path: '/sync/ack', summary: 'Acknowledge envelopes', tags },
    })
    .input(z.object({ upTo: ZEventId }))
    .output(ZOk)
    .mutation(async ({ ctx, input }) => {
      await ack(ctx, ctx.auth, Number(input.upTo));
      return { ok: true as const };
    }),

  /** The same stream by polling, for integrators without WebSockets (durable events only). */
  poll: authedProcedure
    .meta({
      openapi: {
        method: 'GET',
        path: '/sync/events',
        summary: 'Events after a cursor (polling)',
        tags,
      },
    })
    .input(
      z.object({
        after: ZEventId.optional(),
        limit: z.coerce.number().int().min(1).max(500).default(100),
      }),
    )
    .output(
      z.object({
        events: z.array(z.object({ id: z.string(), event: ZSyncEvent })),
        /** Pass as `after` next time (unchanged when nothing new). */
        cursor: z.string(),
        /** More are there already: the page stopped at `limit` or at its byte budget. */
        more: z.boolean(),
      }),
    )
    .query(({ ctx, input }) => pollEvents(ctx, ctx.auth, input.after, input.limit)),
});

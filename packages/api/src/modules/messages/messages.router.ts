import {
  ZEditMessageInput,
  ZHistory,
  ZHistoryInput,
  ZId,
  ZMarkInput,
  ZMarkManyInput,
  ZMarkedMany,
  ZMessage,
  ZMessageRefInput,
  ZOk,
  ZReactInput,
  ZReceipts,
  ZSendMessageInput,
} from '@mvp/contracts';
import { z } from 'zod';
import { authedProcedure, router } from '../../trpc';
import { deleteForEveryone, deleteForMe, editMessage } from './changes.service';
import { history, markDeliveredMany, markReceived } from './history.service';
import * as messages from './messages.service';
import { listPins, setPinned } from './pins.service';
import { react } from './reactions.service';
import { typing } from './typing';

const ok = { ok: true as const };

const tags = ['messages'];

export const messagesRouter = router({
  /** Idempotent by `clientMessageId`: a retry answers the first result. */
  send: authedProcedure
    .meta({
      openapi: {
        method: 'POST',
        path: '/conversations/{conversationId}/messages',
        summary: 'Send an encrypted message',
        tags,
      },
      accountBudget: 'send',
    })
    .input(ZSendMessageInput)
    .output(ZMessage)
    .mutation(({ ctx, input }) => messages.sendMessage(ctx, ctx.auth, input)),

  history: authedProcedure
    .meta({
      openapi: {
        method: 'GET',
        path: '/conversations/{conversationId}/messages',
        summary: 'History by seq (newest page, or before / after a seq)',
        tags,
      },
    })
    .input(ZHistoryInput)
    .output(ZHistory)
    .query(({ ctx, input }) => history(ctx, ctx.auth.userId, input)),

  markDelivered: authedProcedure
    .meta({
      openapi: {
        method: 'POST',
        path: '/conversations/{conversationId}/delivered',
        summary: 'Delivered up to a seq',
        tags,
      },
    })
    .input(ZMarkInput)
    .output(ZReceipts)
    .mutation(({ ctx, input }) => markReceived(ctx, ctx.auth.userId, input, 'delivered')),

  markDeliveredMany: authedProcedure
    .meta({
      openapi: {
        method: 'POST',
        path: '/messages/delivered',
        summary: 'Delivered up to a seq, in several conversations at once',
        tags,
      },
    })
    .input(ZMarkManyInput)
    .output(ZMarkedMany)
    .mutation(({ ctx, input }) => markDeliveredMany(ctx, ctx.auth.userId, input.marks)),

  markRead: authedProcedure
    .meta({
      openapi: {
        method: 'POST',
        path: '/conversations/{conversationId}/read',
        summary: 'Read up to a seq',
        tags,
      },
    })
    .input(ZMarkInput)
    .output(ZReceipts)
    .mutation(({ ctx, input }) => markReceived(ctx, ctx.auth.userId, input, 'read')),

  /** Idempotent by `clientEditId` when given: a retry answers the message as it is. */
  edit: authedProcedure
    .meta({
      openapi: {
        method: 'PATCH',
        path: '/conversations/{conversationId}/messages/{seq}',
        summary: 'Edit my message',
        tags,
      },
      accountBudget: 'send',
    })
    .input(ZEditMessageInput)
    .output(ZMessage)
    .mutation(({ ctx, input }) => editMessage(ctx, ctx.auth.userId, input)),

  delete: authedProcedure
    .meta({
      openapi: {
        method: 'DELETE',
        path: '/conversations/{conversationId}/messages/{seq}',
        summary: 'Delete for everyone (sender or admin)',
        tags,
      },
      // Told to every member, like a send: the same account budget.
      accountBudget: 'send',
    })
    .input(ZMessageRefInput)
    .output(ZMessage)
    .mutation(({ ctx, input }) => deleteForEveryone(ctx, ctx.auth.userId, input)),

  deleteForMe: authedProcedure
    .meta({
      openapi: {
        method: 'POST',
        path: '/conversations/{conversationId}/messages/{seq}/hide',
        summary: 'Delete for me',
        tags,
      },
    })
    .input(ZMessageRefInput)
    .output(ZOk)
    .mutation(async ({ ctx, input }) => {
      await deleteForMe(ctx, ctx.auth.userId, input);
      return ok;
    }),

  react: authedProcedure
    .meta({
      openapi: {
        method: 'POST',
        path: '/conversations/{conversationId}/messages/{seq}/reactions',
        summary: 'Add or remove my reaction',
        tags,
      },
      // Told to every member, like a send: the same account budget.
      accountBudget: 'send',
    })
    .input(ZReactInput)
    .output(ZOk)
    .mutation(async ({ ctx, input }) => {
      await react(ctx, ctx.auth.userId, input);
      return ok;
    }),

  pin: authedProcedure
    .meta({
      openapi: {
        method: 'PUT',
        path: '/conversations/{conversationId}/pins/{seq}',
        summary: 'Pin or unpin (admins)',
        tags,
      },
      // Told to every member, like a send: the same account budget.
      accountBudget: 'send',
    })
    .input(ZMessageRefInput.extend({ pinned: z.boolean() }))
    .output(ZOk)
    .mutation(async ({ ctx, input }) => {
      await setPinned(ctx, ctx.auth.userId, input, input.pinned);
      return ok;
    }),

  pins: authedProcedure
    .meta({
      openapi: {
        method: 'GET',
        path: '/conversations/{conversationId}/pins',
        summary: 'Pinned messages',
        tags,
      },
    })
    .input(z.object({ conversationId: ZId }))
    .output(z.object({ messages: z.array(ZMessage) }))
    .query(async ({ ctx, input }) => ({
      messages: await listPins(ctx, ctx.auth.userId, input.conversationId),
    })),

  /** Ephemeral; renew every few seconds while typing. */
  typing: authedProcedure
    .meta({
      openapi: {
        method: 'POST',
        path: '/conversations/{conversationId}/typing',
        summary: 'I am typing',
        tags,
      },
    })
    .input(z.object({ conversationId: ZId }))
    .output(ZOk)
    .mutation(async ({ ctx, input }) => {
      await typing(ctx, ctx.auth.userId, input.conversationId);
      return ok;
    }),
});

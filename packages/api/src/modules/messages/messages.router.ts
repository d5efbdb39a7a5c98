import {
  ZHistory,
  ZHistoryInput,
  ZMarkInput,
  ZMessage,
  ZReceipts,
  ZSendMessageInput,
} from '@mvp/contracts';
import { authedProcedure, router } from '../../trpc';
import * as messages from './messages.service';

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
    .query(({ ctx, input }) => messages.history(ctx, ctx.auth.userId, input)),

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
    .mutation(({ ctx, input }) => messages.markReceived(ctx, ctx.auth.userId, input, 'delivered')),

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
    .mutation(({ ctx, input }) => messages.markReceived(ctx, ctx.auth.userId, input, 'read')),
});

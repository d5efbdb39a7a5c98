import {
  ZConversation,
  ZConversationIdInput,
  ZCreateConversationInput,
  ZId,
  ZMemberRole,
  ZOk,
} from '@mvp/contracts';
import { z } from 'zod';
import { authedProcedure, router } from '../../trpc';
import * as conversations from './conversations.service';

const ok = { ok: true as const };
const tags = ['conversations'];

export const conversationsRouter = router({
  /** A direct conversation (the same one every time for a pair) or a group of my contacts. */
  create: authedProcedure
    .meta({
      openapi: { method: 'POST', path: '/conversations', summary: 'Start a conversation', tags },
    })
    .input(ZCreateConversationInput)
    .output(ZConversation)
    .mutation(({ ctx, input }) =>
      input.kind === 'direct'
        ? conversations.openDirect(ctx, ctx.auth.userId, input.userId!)
        : conversations.createGroup(ctx, ctx.auth.userId, {
            title: input.title!,
            description: input.description,
            memberIds: input.memberIds ?? [],
          }),
    ),

  list: authedProcedure
    .meta({ openapi: { method: 'GET', path: '/conversations', summary: 'My conversations', tags } })
    .input(z.void())
    .output(z.object({ conversations: z.array(ZConversation) }))
    .query(async ({ ctx }) => ({
      conversations: await conversations.listConversations(ctx, ctx.auth.userId),
    })),

  get: authedProcedure
    .meta({
      openapi: { method: 'GET', path: '/conversations/{id}', summary: 'One conversation', tags },
    })
    .input(ZConversationIdInput)
    .output(ZConversation)
    .query(({ ctx, input }) => conversations.getConversation(ctx, input.id, ctx.auth.userId)),

  members: authedProcedure
    .meta({
      openapi: { method: 'GET', path: '/conversations/{id}/members', summary: 'Members', tags },
    })
    .input(ZConversationIdInput)
    .output(
      z.object({
        members: z.array(
          z.object({ userId: z.string(), role: ZMemberRole, joinedAt: z.iso.datetime() }),
        ),
      }),
    )
    .query(async ({ ctx, input }) => ({
      members: await conversations.listMembers(ctx, ctx.auth.userId, input.id),
    })),

  addMembers: authedProcedure
    .meta({
      openapi: {
        method: 'POST',
        path: '/conversations/{id}/members',
        summary: 'Add contacts (admins)',
        tags,
      },
    })
    .input(z.object({ id: ZId, userIds: z.array(ZId).min(1).max(100) }))
    .output(ZConversation)
    .mutation(({ ctx, input }) =>
      conversations.addMembers(ctx, ctx.auth.userId, input.id, input.userIds),
    ),

  removeMember: authedProcedure
    .meta({
      openapi: {
        method: 'DELETE',
        path: '/conversations/{id}/members/{userId}',
        summary: 'Remove a member (admins)',
        tags,
      },
    })
    .input(z.object({ id: ZId, userId: ZId }))
    .output(ZOk)
    .mutation(async ({ ctx, input }) => {
      await conversations.removeMember(ctx, ctx.auth.userId, input.id, input.userId);
      return ok;
    }),

  leave: authedProcedure
    .meta({
      openapi: { method: 'POST', path: '/conversations/{id}/leave', summary: 'Leave', tags },
    })
    .input(ZConversationIdInput)
    .output(ZOk)
    .mutation(async ({ ctx, input }) => {
      await conversations.removeMember(ctx, ctx.auth.userId, input.id, ctx.auth.userId);
      return ok;
    }),
});

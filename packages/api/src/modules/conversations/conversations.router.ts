import {
  ZCreateInviteInput,
  ZInvite,
  ZInviteCode,
  ZInvitePreview,
  ZSetRoleInput,
  ZUpdateConversationInput,
  ZConversation,
  ZConversationIdInput,
  ZCreateConversationInput,
  ZId,
  ZMemberRole,
  ZOk,
  ZSeq,
} from '@mvp/contracts';
import { z } from 'zod';
import { authedProcedure, router } from '../../trpc';
import * as conversations from './conversations.service';
import { removeConversationAvatar } from './avatar.service';
import * as invites from './invites.service';

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
            kind: input.kind,
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
          z.object({
            userId: z.string(),
            role: ZMemberRole,
            joinedAt: z.iso.datetime(),
            /** Null when that member and I are in a block (one blocked the other). */
            deliveredSeq: ZSeq.nullable(),
            /**
             * Null as `deliveredSeq` is, and when that member does not share read receipts
             * (never for me).
             */
            readSeq: ZSeq.nullable(),
          }),
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

  update: authedProcedure
    .meta({
      openapi: {
        method: 'PATCH',
        path: '/conversations/{id}',
        summary: 'Title, description, slow mode, disappearing timer',
        tags,
      },
    })
    .input(ZUpdateConversationInput)
    .output(ZConversation)
    .mutation(({ ctx, input }) => conversations.updateConversation(ctx, ctx.auth.userId, input)),

  setRole: authedProcedure
    .meta({
      openapi: {
        method: 'PUT',
        path: '/conversations/{id}/members/{userId}/role',
        summary: 'Make admin, member or read-only',
        tags,
      },
    })
    .input(ZSetRoleInput)
    .output(ZOk)
    .mutation(async ({ ctx, input }) => {
      await conversations.setRole(ctx, ctx.auth.userId, input);
      return ok;
    }),

  transferOwnership: authedProcedure
    .meta({
      openapi: {
        method: 'POST',
        path: '/conversations/{id}/owner',
        summary: 'Hand ownership to a member',
        tags,
      },
    })
    .input(z.object({ id: ZId, userId: ZId }))
    .output(ZOk)
    .mutation(async ({ ctx, input }) => {
      await conversations.transferOwnership(ctx, ctx.auth.userId, input);
      return ok;
    }),

  delete: authedProcedure
    .meta({
      openapi: { method: 'DELETE', path: '/conversations/{id}', summary: 'Delete (owner)', tags },
    })
    .input(ZConversationIdInput)
    .output(ZOk)
    .mutation(async ({ ctx, input }) => {
      await conversations.deleteConversation(ctx, ctx.auth.userId, input.id);
      return ok;
    }),

  createInvite: authedProcedure
    .meta({
      openapi: {
        method: 'POST',
        path: '/conversations/{id}/invites',
        summary: 'New invite code',
        tags,
      },
    })
    .input(ZCreateInviteInput)
    .output(ZInvite)
    .mutation(({ ctx, input }) => invites.createInvite(ctx, ctx.auth.userId, input)),

  invites: authedProcedure
    .meta({
      openapi: {
        method: 'GET',
        path: '/conversations/{id}/invites',
        summary: 'Invite codes',
        tags,
      },
    })
    .input(ZConversationIdInput)
    .output(z.object({ invites: z.array(ZInvite) }))
    .query(async ({ ctx, input }) => ({
      invites: await invites.listInvites(ctx, ctx.auth.userId, input.id),
    })),

  revokeInvite: authedProcedure
    .meta({
      openapi: { method: 'DELETE', path: '/invites/{code}', summary: 'Revoke an invite', tags },
    })
    .input(z.object({ code: ZInviteCode }))
    .output(ZOk)
    .mutation(async ({ ctx, input }) => {
      await invites.revokeInvite(ctx, ctx.auth.userId, input.code);
      return ok;
    }),

  previewInvite: authedProcedure
    .meta({
      openapi: { method: 'GET', path: '/invites/{code}', summary: 'What an invite leads to', tags },
    })
    .input(z.object({ code: ZInviteCode }))
    .output(ZInvitePreview)
    .query(({ ctx, input }) => invites.previewInvite(ctx, ctx.auth.userId, input.code)),

  join: authedProcedure
    .meta({
      openapi: { method: 'POST', path: '/invites/{code}/join', summary: 'Join by invite', tags },
    })
    .input(z.object({ code: ZInviteCode }))
    .output(ZConversation)
    .mutation(({ ctx, input }) => invites.joinByInvite(ctx, ctx.auth.userId, input.code)),

  /** Uploads go to `PUT /api/v1/conversations/{id}/avatar` (bytes, like the user avatar). */
  removeAvatar: authedProcedure
    .meta({
      openapi: {
        method: 'DELETE',
        path: '/conversations/{id}/avatar',
        summary: 'Remove the picture (admins)',
        tags,
      },
    })
    .input(ZConversationIdInput)
    .output(ZConversation)
    .mutation(({ ctx, input }) => removeConversationAvatar(ctx, ctx.auth.userId, input.id)),
});

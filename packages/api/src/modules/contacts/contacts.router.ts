import {
  ZBlocks,
  ZContactRequestInput,
  ZContactRequestResult,
  ZContactRequests,
  ZContacts,
  ZId,
  ZOk,
  ZRequestIdInput,
  ZUserIdInput,
} from '@mvp/contracts';
import { z } from 'zod';
import { authedProcedure, router } from '../../trpc';
import * as contacts from './contacts.service';

const ok = { ok: true as const };
const tags = ['contacts'];

export const contactsRouter = router({
  list: authedProcedure
    .meta({ openapi: { method: 'GET', path: '/contacts', summary: 'My contacts', tags } })
    .input(z.void())
    .output(ZContacts)
    .query(async ({ ctx }) => ({ contacts: await contacts.listContacts(ctx, ctx.auth.userId) })),

  requests: authedProcedure
    .meta({
      openapi: {
        method: 'GET',
        path: '/contacts/requests',
        summary: 'Pending requests, both ways',
        tags,
      },
    })
    .input(z.void())
    .output(ZContactRequests)
    .query(({ ctx }) => contacts.listRequests(ctx, ctx.auth.userId)),

  request: authedProcedure
    .meta({
      openapi: {
        method: 'POST',
        path: '/contacts/requests',
        summary: 'Ask someone to be my contact',
        tags,
      },
    })
    .input(ZContactRequestInput)
    .output(ZContactRequestResult)
    .mutation(({ ctx, input }) => contacts.sendRequest(ctx, ctx.auth.userId, input)),

  accept: authedProcedure
    .meta({
      openapi: {
        method: 'POST',
        path: '/contacts/requests/{id}/accept',
        summary: 'Accept a request to me',
        tags,
      },
    })
    .input(ZRequestIdInput)
    .output(ZOk)
    .mutation(
      async ({ ctx, input }) => (await contacts.acceptRequest(ctx, ctx.auth.userId, input.id), ok),
    ),

  decline: authedProcedure
    .meta({
      openapi: {
        method: 'POST',
        path: '/contacts/requests/{id}/decline',
        summary: 'Decline a request to me',
        tags,
      },
    })
    .input(ZRequestIdInput)
    .output(ZOk)
    .mutation(
      async ({ ctx, input }) => (await contacts.declineRequest(ctx, ctx.auth.userId, input.id), ok),
    ),

  cancel: authedProcedure
    .meta({
      openapi: {
        method: 'DELETE',
        path: '/contacts/requests/{id}',
        summary: 'Withdraw my request',
        tags,
      },
    })
    .input(ZRequestIdInput)
    .output(ZOk)
    .mutation(
      async ({ ctx, input }) => (await contacts.cancelRequest(ctx, ctx.auth.userId, input.id), ok),
    ),

  remove: authedProcedure
    .meta({
      openapi: { method: 'DELETE', path: '/contacts/{userId}', summary: 'Remove a contact', tags },
    })
    .input(ZUserIdInput)
    .output(ZOk)
    .mutation(
      async ({ ctx, input }) => (
        await contacts.removeContact(ctx, ctx.auth.userId, input.userId),
        ok
      ),
    ),
});

export const blocksRouter = router({
  list: authedProcedure
    .meta({
      openapi: { method: 'GET', path: '/blocks', summary: 'People I blocked', tags: ['blocks'] },
    })
    .input(z.void())
    .output(ZBlocks)
    .query(async ({ ctx }) => ({ blocked: await contacts.listBlocks(ctx, ctx.auth.userId) })),

  add: authedProcedure
    .meta({
      openapi: {
        method: 'POST',
        path: '/blocks',
        summary: 'Block someone (they are not told)',
        tags: ['blocks'],
      },
    })
    .input(z.object({ userId: ZId }))
    .output(ZOk)
    .mutation(
      async ({ ctx, input }) => (await contacts.block(ctx, ctx.auth.userId, input.userId), ok),
    ),

  remove: authedProcedure
    .meta({
      openapi: { method: 'DELETE', path: '/blocks/{userId}', summary: 'Unblock', tags: ['blocks'] },
    })
    .input(ZUserIdInput)
    .output(ZOk)
    .mutation(
      async ({ ctx, input }) => (await contacts.unblock(ctx, ctx.auth.userId, input.userId), ok),
    ),
});

import {
  ZId,
  ZPrivacy,
  ZPublicProfile,
  ZSearchInput,
  ZSearchOutput,
  ZUpdatePrivacyInput,
} from '@mvp/contracts';
import { z } from 'zod';
import { authedProcedure, router } from '../../trpc';
import { getPrivacy, getProfile, search, updatePrivacy } from './users.service';

export const usersRouter = router({
  // Before `get`: the REST shim matches paths in order, and /users/search fits /users/{id}.
  search: authedProcedure
    .meta({
      openapi: {
        method: 'GET',
        path: '/users/search',
        summary: 'Find people by exact handle, unique id, phone or username prefix',
        tags: ['users'],
      },
    })
    .input(ZSearchInput)
    .output(ZSearchOutput)
    .query(({ ctx, input }) => search(ctx, ctx.auth.userId, input)),

  get: authedProcedure
    .meta({
      openapi: {
        method: 'GET',
        path: '/users/{id}',
        summary: 'A profile, as its owner lets me see it',
        tags: ['users'],
      },
    })
    .input(z.object({ id: ZId }))
    .output(ZPublicProfile)
    .query(({ ctx, input }) => getProfile(ctx, ctx.auth.userId, input.id)),

  privacy: authedProcedure
    .meta({
      openapi: { method: 'GET', path: '/me/privacy', summary: 'My privacy settings', tags: ['me'] },
    })
    .input(z.void())
    .output(ZPrivacy)
    .query(({ ctx }) => getPrivacy(ctx, ctx.auth.userId)),

  updatePrivacy: authedProcedure
    .meta({
      openapi: {
        method: 'PATCH',
        path: '/me/privacy',
        summary: 'Change who can find me, see my presence, ask to be my contact',
        tags: ['me'],
      },
    })
    .input(ZUpdatePrivacyInput)
    .output(ZPrivacy)
    .mutation(({ ctx, input }) => updatePrivacy(ctx, ctx.auth.userId, input)),
});

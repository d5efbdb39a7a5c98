import {
  ZChangePasswordInput,
  ZDeleteMeInput,
  ZMe,
  ZOk,
  ZRevokeOthersOutput,
  ZUpdateMeInput,
} from '@mvp/contracts';
import { z } from 'zod';
import { authedProcedure, router } from '../../trpc';
import { removeAvatar } from './avatar.service';
import { changePassword, deleteMe, getMe, updateMe } from './me.service';

const tags = ['me'];

export const meRouter = router({
  get: authedProcedure
    .meta({ openapi: { method: 'GET', path: '/me', summary: 'My account', tags } })
    .input(z.void())
    .output(ZMe)
    .query(({ ctx }) => getMe(ctx, ctx.auth.userId)),

  update: authedProcedure
    .meta({
      openapi: {
        method: 'PATCH',
        path: '/me',
        summary: 'Change display name, username or sign-in codes',
        tags,
      },
    })
    .input(ZUpdateMeInput)
    .output(ZMe)
    .mutation(({ ctx, input }) => updateMe(ctx, ctx.auth.userId, input)),

  // Uploads are a plain HTTP route (PUT /api/v1/me/avatar in apps/server): tRPC carries JSON.
  deleteAvatar: authedProcedure
    .meta({
      openapi: { method: 'DELETE', path: '/me/avatar', summary: 'Remove my avatar', tags },
    })
    .input(z.void())
    .output(ZMe)
    .mutation(({ ctx }) => removeAvatar(ctx, ctx.auth.userId)),

  changePassword: authedProcedure
    .meta({
      openapi: { method: 'POST', path: '/me/password', summary: 'Change my password', tags },
    })
    .input(ZChangePasswordInput)
    .output(ZRevokeOthersOutput)
    .mutation(({ ctx, input }) => changePassword(ctx, ctx.auth, input)),

  delete: authedProcedure
    .meta({
      openapi: {
        method: 'POST',
        path: '/me/delete',
        summary: 'Delete my account and its data',
        tags,
      },
    })
    .input(ZDeleteMeInput)
    .output(ZOk)
    .mutation(async ({ ctx, input }) => {
      await deleteMe(ctx, ctx.auth.userId, input.password);
      return { ok: true as const };
    }),
});

import {
  ZClaimManyInput,
  ZDeviceList,
  ZId,
  ZKeyCount,
  ZPrekeyBundle,
  ZPublishKeysInput,
  ZUploadPrekeysInput,
  ZVerification,
  ZVerifyInput,
} from '@mvp/contracts';
import { z } from 'zod';
import { authedProcedure, router } from '../../trpc';
import * as keys from './keys.service';

const tags = ['keys'];

export const keysRouter = router({
  /** This device's public keys (first login, or a new identity: peers see a new device). */
  publish: authedProcedure
    .meta({ openapi: { method: 'PUT', path: '/keys', summary: 'Publish my device keys', tags } })
    .input(ZPublishKeysInput)
    .output(ZKeyCount)
    .mutation(({ ctx, input }) => keys.publishKeys(ctx, ctx.auth, input)),

  /** More one-time prekeys and/or a new signed prekey. */
  upload: authedProcedure
    .meta({ openapi: { method: 'POST', path: '/keys/prekeys', summary: 'Top up prekeys', tags } })
    .input(ZUploadPrekeysInput)
    .output(ZKeyCount)
    .mutation(({ ctx, input }) => keys.uploadPrekeys(ctx, ctx.auth, input)),

  count: authedProcedure
    .meta({ openapi: { method: 'GET', path: '/keys/count', summary: 'My prekey stock', tags } })
    .input(z.void())
    .output(ZKeyCount)
    .query(({ ctx }) => keys.keyCount(ctx, ctx.auth)),

  devices: authedProcedure
    .meta({
      openapi: {
        method: 'GET',
        path: '/users/{userId}/devices',
        summary: 'A user’s devices',
        tags,
      },
    })
    .input(z.object({ userId: ZId }))
    .output(ZDeviceList)
    .query(({ ctx, input }) => keys.listDevices(ctx, input.userId)),

  /** Takes one one-time prekey per device for good: a mutation, and rate limited. */
  claim: authedProcedure
    .meta({
      openapi: {
        method: 'POST',
        path: '/users/{userId}/keys/claim',
        summary: 'Claim a prekey bundle',
        tags,
      },
    })
    .input(
      z.object({
        userId: ZId,
        /** Only these devices' one-time prekeys are taken (the others answer without one). */
        deviceIds: z.array(ZId).min(1).max(100).optional(),
      }),
    )
    .output(ZPrekeyBundle)
    .mutation(({ ctx, input }) =>
      keys.claimBundle(ctx, ctx.auth.userId, input.userId, input.deviceIds),
    ),

  /** `claim` for up to 100 users at once (a first send to a group); each user costs as a claim. */
  claimMany: authedProcedure
    .meta({
      openapi: {
        method: 'POST',
        path: '/keys/claim',
        summary: 'Claim the prekey bundles of several users',
        tags,
      },
    })
    .input(ZClaimManyInput)
    .output(z.object({ users: z.array(ZPrekeyBundle) }))
    .mutation(({ ctx, input }) => keys.claimBundles(ctx, ctx.auth.userId, input.users)),

  verify: authedProcedure
    .meta({
      openapi: {
        method: 'PUT',
        path: '/users/{userId}/verification',
        summary: 'I verified their safety number',
        tags,
      },
    })
    .input(ZVerifyInput)
    .output(ZVerification.nullable())
    .mutation(({ ctx, input }) => keys.verify(ctx, ctx.auth.userId, input)),

  verification: authedProcedure
    .meta({
      openapi: {
        method: 'GET',
        path: '/users/{userId}/verification',
        summary: 'Whether I verified them (and it still holds)',
        tags,
      },
    })
    .input(z.object({ userId: ZId }))
    .output(ZVerification.nullable())
    .query(({ ctx, input }) => keys.verification(ctx, ctx.auth.userId, input.userId)),
});

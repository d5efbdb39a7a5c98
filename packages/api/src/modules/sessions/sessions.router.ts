import { ZOk, ZRevokeOthersOutput, ZSessionIdInput, ZSessionList } from '@mvp/contracts';
import { z } from 'zod';
import { authedProcedure, router } from '../../trpc';
import { listSessions, revokeByIds, revokeSession } from './sessions.service';

const tags = ['sessions'];

export const sessionsRouter = router({
  list: authedProcedure
    .meta({ openapi: { method: 'GET', path: '/sessions', summary: 'My signed-in devices', tags } })
    .input(z.void())
    .output(ZSessionList)
    .query(async ({ ctx }) => ({
      sessions: await listSessions(ctx, ctx.auth.userId, ctx.auth.sessionId),
    })),

  revoke: authedProcedure
    .meta({
      openapi: { method: 'DELETE', path: '/sessions/{id}', summary: 'Sign one device out', tags },
    })
    .input(ZSessionIdInput)
    .output(ZOk)
    .mutation(async ({ ctx, input }) => {
      await revokeSession(ctx, ctx.auth.userId, input.id);
      return { ok: true as const };
    }),

  revokeOthers: authedProcedure
    .meta({
      openapi: {
        method: 'POST',
        path: '/sessions/revoke-others',
        summary: 'Sign every other device out',
        tags,
      },
    })
    .input(z.void())
    .output(ZRevokeOthersOutput)
    .mutation(async ({ ctx }) => {
      const ids = await revokeByIds(
        ctx,
        ctx.auth.userId,
        { except: ctx.auth.sessionId },
        'revoked',
      );
      return { revoked: ids.length };
    }),
});

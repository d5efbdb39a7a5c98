import {
  ZAcceptCallInput,
  ZCall,
  ZCallHistoryInput,
  ZCallIdInput,
  ZCallSignalInput,
  ZHangupInput,
  ZIceServers,
  ZId,
  ZOk,
  ZStartCallInput,
} from '@mvp/contracts';
import { z } from 'zod';
import { authedProcedure, router } from '../../trpc';
import * as calls from './calls.service';
import { callHistory, getCall } from './history.service';
import { startCall } from './ringing.service';
import { heartbeat, signal } from './signalling.service';

const tags = ['calls'];
const ok = { ok: true as const };

export const callsRouter = router({
  /** STUN URLs and short-lived TURN credentials (coturn's use-auth-secret scheme). */
  iceServers: authedProcedure
    .meta({ openapi: { method: 'GET', path: '/calls/ice-servers', summary: 'ICE servers', tags } })
    .input(z.void())
    .output(ZIceServers)
    .query(({ ctx }) => calls.iceServers(ctx, ctx.auth.userId)),

  start: authedProcedure
    .input(ZStartCallInput)
    .output(ZCall)
    .mutation(({ ctx, input }) => startCall(ctx, ctx.auth, input)),

  accept: authedProcedure
    .input(ZAcceptCallInput)
    .output(ZCall)
    .mutation(({ ctx, input }) => calls.acceptCall(ctx, ctx.auth, input)),

  reject: authedProcedure
    .input(ZCallIdInput)
    .output(ZCall)
    .mutation(({ ctx, input }) => calls.rejectCall(ctx, ctx.auth, input.callId)),

  cancel: authedProcedure
    .input(ZCallIdInput)
    .output(ZCall)
    .mutation(({ ctx, input }) => calls.cancelCall(ctx, ctx.auth, input.callId)),

  hangup: authedProcedure
    .input(ZHangupInput)
    .output(ZCall)
    .mutation(({ ctx, input }) => calls.hangup(ctx, ctx.auth, input)),

  /** Encrypted ICE candidates, renegotiation, ICE restart: relayed live to the peer device. */
  signal: authedProcedure
    .input(ZCallSignalInput)
    .output(ZOk)
    .mutation(async ({ ctx, input }) => {
      await signal(ctx, ctx.auth, input);
      return ok;
    }),

  heartbeat: authedProcedure
    .input(ZCallIdInput)
    .output(ZOk)
    .mutation(async ({ ctx, input }) => {
      await heartbeat(ctx, ctx.auth, input.callId);
      return ok;
    }),

  history: authedProcedure
    .meta({ openapi: { method: 'GET', path: '/calls', summary: 'My calls', tags } })
    .input(ZCallHistoryInput)
    .output(z.object({ calls: z.array(ZCall), more: z.boolean() }))
    .query(({ ctx, input }) => callHistory(ctx, ctx.auth.userId, input)),

  get: authedProcedure
    .meta({ openapi: { method: 'GET', path: '/calls/{id}', summary: 'One call', tags } })
    .input(z.object({ id: ZId }))
    .output(ZCall)
    .query(({ ctx, input }) => getCall(ctx, ctx.auth.userId, input.id)),
});

import {
  ZAuthResult,
  ZAuthTokens,
  ZLoginInput,
  ZOk,
  ZOtpSendInput,
  ZOtpSendOutput,
  ZOtpVerifyInput,
  ZRefreshInput,
  ZRegisterInput,
} from '@mvp/contracts';
import { z } from 'zod';
import { enforceLimit } from '../../rateLimit';
import { authedProcedure, publicProcedure, router } from '../../trpc';
import { refreshSession } from '../sessions/sessions.service';
import { login, logout, register, sendOtp, verifyOtp } from './auth.service';

const meta = (method: 'POST', path: `/${string}`, summary: string, protect = false) => ({
  openapi: { method, path, summary, tags: ['auth'], protect },
});

export const authRouter = router({
  register: publicProcedure
    .meta(
      meta('POST', '/auth/register', 'Create an account (a phone number needs an SMS code next)'),
    )
    .input(ZRegisterInput)
    .output(ZAuthResult)
    .mutation(({ ctx, input }) => register(ctx, input)),

  otp: router({
    send: publicProcedure
      .meta(meta('POST', '/auth/otp/send', 'Send a new code for a pending challenge'))
      .input(ZOtpSendInput)
      .output(ZOtpSendOutput)
      .mutation(async ({ ctx, input }) => ({
        status: 'sent' as const,
        ...(await sendOtp(ctx, input.challengeId)),
      })),
    verify: publicProcedure
      .meta(meta('POST', '/auth/otp/verify', 'Answer a challenge with its code; returns tokens'))
      .input(ZOtpVerifyInput)
      .output(ZAuthTokens)
      .mutation(({ ctx, input }) => verifyOtp(ctx, input.challengeId, input.code)),
  }),

  login: publicProcedure
    .meta(meta('POST', '/auth/login', 'Sign in with username, phone or unique id and password'))
    .input(ZLoginInput)
    .output(ZAuthResult)
    .mutation(({ ctx, input }) => login(ctx, input)),

  refresh: publicProcedure
    .meta(meta('POST', '/auth/refresh', 'Exchange a refresh token for a new pair (single use)'))
    .input(ZRefreshInput)
    .output(ZAuthTokens)
    .mutation(async ({ ctx, input }) => {
      await enforceLimit(ctx, 'refresh-ip', ctx.settings.auth.limits.refreshIp, ctx.ip);
      return refreshSession(ctx, input.refreshToken);
    }),

  logout: authedProcedure
    .meta(meta('POST', '/auth/logout', 'End this session', true))
    .input(z.void())
    .output(ZOk)
    .mutation(async ({ ctx }) => {
      await logout(ctx, ctx.auth.userId, ctx.auth.sessionId);
      return { ok: true as const };
    }),
});

import { z } from 'zod';
import { ZSystemInfoOutput, ZTicksInput } from '@mvp/contracts';
import { publicProcedure, router } from '../../trpc';
import { getSystemInfo, tickStream } from './system.service';

export const systemRouter = router({
  info: publicProcedure
    .meta({
      openapi: {
        method: 'GET',
        path: '/system/info',
        tags: ['system'],
        protect: false,
        summary: 'Server name, version, time and installation id',
      },
    })
    .input(z.void())
    .output(ZSystemInfoOutput)
    .query(({ ctx }) => getSystemInfo(ctx)),

  ticks: publicProcedure
    .input(ZTicksInput)
    .subscription(({ ctx, input, signal }) => tickStream(ctx, input, signal)),
});

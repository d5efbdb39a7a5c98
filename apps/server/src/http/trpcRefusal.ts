import { TRPCError } from '@trpc/server';
import { getErrorShape, transformTRPCResponse } from '@trpc/server/unstable-core-do-not-import';
import { appRouter } from '@mvp/api';

/**
 * The body tRPC itself would answer a call (or a batch of them) refused before tRPC saw it, so
 * that a tRPC client reads the error's code: an answer in the REST shape is "Unable to transform
 * response" to it, a network failure it retries for ever.
 */
export function trpcRefusal(
  procedurePath: string,
  batch: boolean,
  code: TRPCError['code'],
  message: string,
): string {
  const config = appRouter._def._config;
  const error = new TRPCError({ code, message });
  const answer = (path: string) =>
    transformTRPCResponse(config, {
      error: getErrorShape({
        config,
        error,
        type: 'unknown',
        path,
        input: undefined,
        ctx: undefined,
      }),
    });
  return JSON.stringify(batch ? procedurePath.split(',').map(answer) : answer(procedurePath));
}

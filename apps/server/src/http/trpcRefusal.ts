import type { TRPCError } from '@trpc/server';
import { getErrorShape, transformTRPCResponse } from '@trpc/server/unstable-core-do-not-import';
import { appRouter } from '@mvp/api';

/** The calls a `/trpc/…` request names, read from its URL alone (nothing of the body). */
export type TrpcCalls = {
  /** Procedure paths, at most `maxBatch + 1` of them: enough to tell that a batch is too big. */
  paths: string[];
  batch: boolean;
  /** More calls than a batch may hold: tRPC refuses the request whole, and so does a refusal. */
  tooMany: boolean;
};

export function trpcCallsOf(procedurePath: string, search: string, maxBatch: number): TrpcCalls {
  const batch = new URLSearchParams(search).get('batch') === '1';
  // The limit stops the split early: a path may hold thousands of commas.
  const paths = batch ? procedurePath.split(',', maxBatch + 1) : [procedurePath];
  return { paths, batch, tooMany: paths.length > maxBatch };
}

/**
 * The body tRPC itself would answer a call (or a batch of them) refused before tRPC saw it, so
 * that a tRPC client reads the error's code: an answer in the REST shape is "Unable to transform
 * response" to it, a network failure it retries for ever. A batch gets one error per call, as
 * tRPC answers, unless it names more calls than a batch may hold: then one error for the whole
 * request, as tRPC answers those (one per comma made a 14 KB request a 1 MB answer).
 */
export function trpcRefusal(calls: TrpcCalls, error: TRPCError, requestId: string): string {
  const config = appRouter._def._config;
  const answer = (path: string | undefined) =>
    transformTRPCResponse(config, {
      error: getErrorShape({
        config,
        error,
        type: 'unknown',
        path,
        input: undefined,
        // What the error formatter takes the request id from.
        ctx: { requestId, transport: 'http' },
      }),
    });
  if (!calls.batch) return JSON.stringify(answer(calls.paths[0]));
  return JSON.stringify(calls.tooMany ? answer(undefined) : calls.paths.map(answer));
}

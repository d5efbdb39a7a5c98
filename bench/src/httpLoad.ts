import autocannon from 'autocannon';
import { LatencyRecorder, roundResult, type RoundResult } from './stats';

export type HttpLoadOptions = {
  connections: number;
  durationS: number;
};

/**
 * autocannon with keep-alive connections (its default: one persistent HTTP/1.1 connection per
 * `connections`, no pipelining), so each connection is a closed loop of GET requests. Latencies
 * are taken from its per-response event rather than its histogram, which keeps whole
 * milliseconds only, and so that HTTP and WebSocket figures come from the same percentile code.
 */
export async function runHttpLoad(url: string, options: HttpLoadOptions): Promise<RoundResult> {
  const latencies = new LatencyRecorder();
  let ok = 0;
  const result = await new Promise<autocannon.Result>((resolve, reject) => {
    const instance = autocannon(
      { url, connections: options.connections, pipelining: 1, duration: options.durationS },
      (err: unknown, res: autocannon.Result) =>
        err
          ? reject(err instanceof Error ? err : new Error('autocannon failed', { cause: err }))
          : resolve(res),
    );
    instance.on('response', (_client, statusCode, _bytes, responseTime) => {
      if (statusCode < 200 || statusCode >= 300) return;
      ok++;
      latencies.record(responseTime);
    });
  });
  // A rate-limited or failing server answers faster than a working one; refuse such a round.
  if (result.non2xx > 0 || result.errors > 0) {
    throw new Error(
      `${url}: ${result.non2xx} non-2xx answers, ${result.errors} errors in one round`,
    );
  }
  return roundResult(ok, result.duration, latencies);
}

import autocannon from 'autocannon';
import { LatencyRecorder, roundResult, type RoundResult } from './stats';

export const BENCH_PASSWORD = 'correct horse battery staple 42';
export const BENCH_DEVICE = { name: 'bench', platform: 'node' } as const;

export const benchUsername = (i: number) => `bench_${i + 1}`;

/** The tRPC (superjson) body of an `auth.login` mutation; raw and MVP get the same bytes. */
export function loginBody(identifier: string): string {
  return JSON.stringify({
    json: { identifier, password: BENCH_PASSWORD, device: BENCH_DEVICE },
  });
}

/** A successful login answer over tRPC HTTP: `{"result":{"data":{"json":{"status":"ok",…}}}}`. */
export function isOkLogin(body: string): boolean {
  try {
    const parsed = JSON.parse(body) as { result?: { data?: { json?: { status?: unknown } } } };
    return parsed.result?.data?.json?.status === 'ok';
  } catch {
    return false;
  }
}

export type LoginLoadOptions = {
  connections: number;
  durationS: number;
  identifiers: string[];
};

/**
 * A login storm: autocannon keep-alive connections, each a closed loop of POST logins, cycling
 * through the registered accounts. Only 200 answers whose body says `status: "ok"` count; a
 * round with anything else (a 401 or 429 is cheaper than a login and would flatter the figure,
 * an `otp_required` would skip the tokens) is refused.
 */
export async function runLoginLoad(url: string, options: LoginLoadOptions): Promise<RoundResult> {
  const bodies = options.identifiers.map(loginBody);
  let next = 0;
  const latencies = new LatencyRecorder();
  let ok = 0;
  let notOk = 0;
  let firstBad: string | undefined;
  const result = await new Promise<autocannon.Result>((resolve, reject) => {
    const instance = autocannon(
      {
        url,
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        connections: options.connections,
        pipelining: 1,
        duration: options.durationS,
        requests: [
          {
            setupRequest: (request) => ({ ...request, body: bodies[next++ % bodies.length] }),
            onResponse: (status, body) => {
              if (status === 200 && isOkLogin(body)) {
                ok++;
              } else {
                notOk++;
                firstBad ??= `${status} ${body.slice(0, 300)}`;
              }
            },
          },
        ],
      },
      (err: unknown, res: autocannon.Result) =>
        err
          ? reject(err instanceof Error ? err : new Error('autocannon failed', { cause: err }))
          : resolve(res),
    );
    instance.on('response', (_client, statusCode, _bytes, responseTime) => {
      if (statusCode === 200) latencies.record(responseTime);
    });
  });
  if (notOk > 0 || result.non2xx > 0 || result.errors > 0 || result.timeouts > 0) {
    throw new Error(
      `${url}: ${notOk} answers that are not a successful login (first: ${firstBad ?? '-'}), ` +
        `${result.non2xx} non-2xx, ${result.errors} errors, ${result.timeouts} timeouts in one round`,
    );
  }
  return roundResult(ok, result.duration, latencies);
}

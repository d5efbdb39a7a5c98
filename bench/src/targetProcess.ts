/**
 * Entry point of a target child process: `targetProcess.ts raw <payload json>` or
 * `targetProcess.ts mvp`. Starts one server, reports its endpoints over IPC, and stops on request.
 */
import { createServer, defaultConfig } from '@mvp/server';
import { startBaseline, type BaselinePayload } from './baselines';
import type { TargetEndpoints, TargetKind, TargetReady, TargetStop } from './targets';

async function start(kind: TargetKind): Promise<TargetEndpoints & { close(): Promise<void> }> {
  if (kind === 'raw') {
    const payload = JSON.parse(process.argv[3] ?? '') as BaselinePayload;
    const raw = await startBaseline(payload);
    return { httpUrl: raw.httpUrl, wsUrl: raw.wsUrl, close: () => raw.close() };
  }
  const server = await createServer(
    defaultConfig({
      nodeEnv: 'production',
      port: 0,
      databaseUrl: 'sqlite::memory:',
      logLevel: 'silent',
      // The limiter still runs on every call (its cost is part of what is measured); the
      // budget is only so large that the load never hits it.
      ipRateLimit: { points: 1_000_000_000, durationSeconds: 60 },
    }),
  );
  return {
    httpUrl: `${server.trpcUrl}/system.info`,
    wsUrl: server.wsUrl,
    close: () => server.shutdown(),
  };
}

const kind = process.argv[2];
if (kind !== 'raw' && kind !== 'mvp') throw new Error(`unknown target kind: ${kind}`);
const target = await start(kind);

process.on('message', (message: TargetStop) => {
  if (message.type !== 'stop') return;
  void target.close().finally(() => process.exit(0));
});
// If the parent dies mid-run, do not linger holding a port.
process.on('disconnect', () => process.exit(0));

process.send?.({
  type: 'ready',
  endpoints: { httpUrl: target.httpUrl, wsUrl: target.wsUrl },
} satisfies TargetReady);

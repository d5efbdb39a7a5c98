import { fork, type ChildProcess } from 'node:child_process';
import type { BaselinePayload } from './baselines';
import { targetProcessEnv } from './config';

export type TargetKind = 'raw' | 'mvp';

/** Where the load generators point; both kinds expose the same two endpoints. */
export type TargetEndpoints = {
  /** GET answers system.info's JSON. */
  httpUrl: string;
  /** tRPC WebSocket protocol, or the raw server's imitation of it. */
  wsUrl: string;
};

/** Child → parent over IPC. */
export type TargetReady = { type: 'ready'; endpoints: TargetEndpoints };
/** Parent → child over IPC. */
export type TargetStop = { type: 'stop' };

export type Target = TargetEndpoints & { kind: TargetKind; stop(): Promise<void> };

/**
 * Each server runs in its own child process and the load generators run in this one. On a small
 * machine a shared event loop would make client and server steal each other's time in a way
 * that depends on the server's speed, which skews exactly the ratio being measured. Raw and MVP
 * are started the same way, so both pay the same IPC/process costs (none while measuring).
 */
export async function startTarget(kind: TargetKind, payload?: BaselinePayload): Promise<Target> {
  const args = payload ? [kind, JSON.stringify(payload)] : [kind];
  // fork() reuses this process's execArgv, which under `tsx` includes its loader, so the child
  // can run TypeScript (and @mvp/server's source) too.
  const child: ChildProcess = fork(new URL('./targetProcess.ts', import.meta.url), args, {
    env: targetProcessEnv(),
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));

  const endpoints = await new Promise<TargetEndpoints>((resolve, reject) => {
    child.once('message', (message: TargetReady) => resolve(message.endpoints));
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`${kind} target exited early (code ${code})`)));
  });

  return {
    kind,
    ...endpoints,
    stop: async () => {
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      child.send({ type: 'stop' } satisfies TargetStop);
      await exited;
      clearTimeout(timer);
    },
  };
}

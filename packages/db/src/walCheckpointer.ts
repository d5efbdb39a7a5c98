import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

/**
 * How often the worker copies the write-ahead log back into the database file: often enough that
 * each pass copies a few commits' pages and the log stays short for readers (every page read
 * looks the log up first); a pass with nothing to copy costs microseconds. 250 ms was slower.
 */
const INTERVAL_MS = 50;

// The worker's whole program. It is evaluated (not a file of its own) so that it runs the same
// wherever this package is bundled to; the driver is passed as a resolved path for the same
// reason.
const WORKER_SOURCE = `
const { workerData } = require('node:worker_threads');
const SQLite = require(workerData.driver);
const db = new SQLite(workerData.path);
setInterval(() => db.pragma('wal_checkpoint(PASSIVE)'), workerData.intervalMs);
`;

export type WalCheckpointer = { stop(): void };

/**
 * Checkpoints an SQLite file in WAL mode from a worker thread, so the serving thread never does.
 *
 * better-sqlite3 is synchronous: with SQLite's automatic checkpoint, the commit that fills the
 * log past 1000 pages copies them back into the database file on the event loop, a 5 ms stall
 * every ~120 small commits on this machine, which every request queued behind it waits out
 * (bench/README.md, session 7). A PASSIVE checkpoint on another connection takes no lock that
 * writers need, so commits go on while it copies. No library does this for better-sqlite3.
 *
 * `onFailure` runs if the worker stops on its own; the caller then checkpoints in-line again.
 */
export function startWalCheckpointer(
  path: string,
  onFailure: (err: Error) => void,
): WalCheckpointer {
  const driver = createRequire(import.meta.url).resolve('better-sqlite3');
  const worker = new Worker(WORKER_SOURCE, {
    eval: true,
    workerData: { driver, path, intervalMs: INTERVAL_MS },
  });
  // Once: a worker that throws also exits, and a stopped one is not a failure.
  let over = false;
  const fail = (err: Error) => {
    if (over) return;
    over = true;
    onFailure(err);
  };
  worker.once('error', fail);
  worker.once('exit', (code) => fail(new Error(`WAL checkpointer exited (code ${code})`)));
  // Never the reason a process stays up.
  worker.unref();
  return {
    stop() {
      over = true;
      void worker.terminate();
    },
  };
}

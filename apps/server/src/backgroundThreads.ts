import { readdirSync } from 'node:fs';
import { setPriority } from 'node:os';

/**
 * Lets the thread that serves requests go first: the threads running beside it when this is
 * called get a lower priority (a higher nice). They are V8's platform workers (TurboFan's
 * concurrent compiles, concurrent marking, parallel scavenges) and, once an ES module has been
 * loaded, libuv's pool (password hashing, file I/O), which Node starts while loading modules. On
 * two cores, a worker the main thread woke took its CPU for 2-5 ms while it waited in the run
 * queue with a request in hand: most of the relay's slowest messages (bench/README, session 21).
 * They still run at full speed on a core nothing else wants. Threads started later (worker
 * threads) keep the normal priority. Linux only, where nice is per thread; elsewhere, and for
 * threads it cannot change, it does nothing. Answers how many threads it lowered.
 */
export function yieldBackgroundThreads(nice: number): number {
  if (process.platform !== 'linux') return 0;
  let threads: string[];
  try {
    threads = readdirSync('/proc/self/task');
  } catch {
    return 0;
  }
  let lowered = 0;
  for (const thread of threads) {
    const tid = Number(thread);
    if (tid === process.pid) continue;
    try {
      setPriority(tid, nice);
      lowered++;
    } catch {
      // Gone meanwhile, or not ours to change: it keeps its priority.
    }
  }
  return lowered;
}

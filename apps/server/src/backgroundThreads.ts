import { readdirSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';

/**
 * Lets the thread that serves requests go first: every thread running beside it when this is
 * called gets `by` more nice than the main thread has (at most 19; never less than it had). They
 * are V8's platform workers (TurboFan's concurrent compiles, concurrent marking, parallel
 * scavenges) and, once an ES module has been loaded, libuv's pool, which Node 20 starts while
 * loading modules (password hashing, DNS lookups, file I/O). On two cores, a worker the main
 * thread woke took its CPU for 2-5 ms while it waited in the run queue with a request in hand:
 * most of the relay's slowest messages (bench/README, session 21). They still run at full speed
 * on a core nothing else wants; the cost is theirs when the host is saturated (a login's hashing
 * then waits behind requests, and behind other processes at normal priority). Threads started
 * later (worker threads) inherit the main thread's priority. Linux only, where nice is per
 * thread; elsewhere, and for threads it cannot change, it does nothing. Answers how many threads
 * it lowered.
 */
export function yieldBackgroundThreads(by: number): number {
  if (process.platform !== 'linux' || by <= 0) return 0;
  let threads: string[];
  try {
    threads = readdirSync('/proc/self/task');
  } catch {
    return 0;
  }
  const target = Math.min(19, getPriority(process.pid) + by);
  let lowered = 0;
  for (const thread of threads) {
    const tid = Number(thread);
    if (tid === process.pid) continue;
    try {
      // Only ever lower a thread's priority: raising it back needs a privilege we may not have.
      if (getPriority(tid) >= target) continue;
      setPriority(tid, target);
      lowered++;
    } catch {
      // Gone meanwhile, or not ours to change: it keeps its priority.
    }
  }
  return lowered;
}

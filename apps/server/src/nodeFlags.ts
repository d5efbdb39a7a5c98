/**
 * The Node flags every start command of the server passes: both `start` scripts and the
 * Dockerfile's CMD (a test keeps them in step), and the bench's MVP targets, so it measures the
 * server as it is run.
 *
 * `--no-memory-reducer`: when an instance's traffic dips, V8's memory reducer runs up to three
 * full GCs about 0.6 s apart to hand memory back to the system. When traffic resumes during them,
 * each one pauses the instance: 8-35 ms on two busy cores, one in three of the cross-instance
 * latency rounds hit (bench/README, session 11). A chat server's traffic dips and resumes all
 * day; we keep the heap at its working size instead, and V8 still collects it as it fills.
 *
 * `--min-semi-space-size=16` (MiB): V8 sizes the young generation by the recent allocation rate,
 * shrinking it while an instance is quiet, and a burst after a lull then runs a scavenge every
 * few milliseconds until it has grown back. At the bench's steady loads the scavenges per
 * 12-s round swung 8–51 with what the instance did before; with a 16-MiB floor they are 9–12,
 * every round, and the relay's p99 was lower in both paired runs (bench/README, session 26).
 * It costs up to 32 MiB of young generation an instance keeps even when idle.
 */
export const SERVER_NODE_FLAGS: readonly string[] = [
  '--no-memory-reducer',
  '--min-semi-space-size=16',
];

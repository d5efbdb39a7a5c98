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
 */
export const SERVER_NODE_FLAGS: readonly string[] = ['--no-memory-reducer'];

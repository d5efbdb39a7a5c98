import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Metrics } from '@mvp/api';

export type ServerMetrics = Metrics & {
  registry: Registry;
  wsConnections: Gauge;
};

/** One registry per server instance, so several servers in one test process do not collide. */
export function createMetrics(): ServerMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const calls = new Counter({
    name: 'mvp_trpc_calls_total',
    help: 'Procedure calls by path, type and outcome (ok or the error code)',
    labelNames: ['path', 'type', 'outcome'],
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'mvp_trpc_call_duration_seconds',
    help: 'Procedure latency; for subscriptions, the time to set up the stream',
    labelNames: ['path', 'type'],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry],
  });
  const wsConnections = new Gauge({
    name: 'mvp_ws_connections',
    help: 'Open WebSocket connections',
    registers: [registry],
  });
  const streamsWaiting = new Gauge({
    name: 'mvp_sync_streams_waiting',
    help: 'Event streams waiting for a slow reader to take what was sent',
    registers: [registry],
  });
  const streamOverflows = new Counter({
    name: 'mvp_sync_stream_overflows_total',
    help: 'Times a stream fell behind its bus: queued ephemeral events dropped, durable ones read',
    registers: [registry],
  });
  return {
    registry,
    wsConnections,
    streamWaiting: (waiting) => (waiting ? streamsWaiting.inc() : streamsWaiting.dec()),
    streamOverflowed: () => streamOverflows.inc(),
    observeProcedure({ path, type, outcome, seconds }) {
      calls.inc({ path, type, outcome });
      duration.observe({ path, type }, seconds);
    },
  };
}

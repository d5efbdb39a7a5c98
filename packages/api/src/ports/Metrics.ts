export type ProcedureObservation = {
  path: string;
  type: 'query' | 'mutation' | 'subscription';
  /** `ok` or the tRPC error code. */
  outcome: string;
  seconds: number;
};

export type Metrics = {
  observeProcedure(observation: ProcedureObservation): void;
  /** An event stream started (`true`) or stopped (`false`) waiting for a slow reader. */
  streamWaiting(waiting: boolean): void;
  /** An event stream fell so far behind its bus that it dropped what was queued and reads. */
  streamOverflowed(): void;
};

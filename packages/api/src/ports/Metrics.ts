export type ProcedureObservation = {
  path: string;
  type: 'query' | 'mutation' | 'subscription';
  /** `ok` or the tRPC error code. */
  outcome: string;
  seconds: number;
};

export type Metrics = {
  observeProcedure(observation: ProcedureObservation): void;
};

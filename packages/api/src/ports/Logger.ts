type LogFn = {
  (object: object, message?: string): void;
  (message: string): void;
};

/** The subset of pino that the API uses, so tests can pass a silent or capturing logger. */
export type Logger = {
  debug: LogFn;
  info: LogFn;
  warn: LogFn;
  error: LogFn;
  child(bindings: Record<string, unknown>): Logger;
};

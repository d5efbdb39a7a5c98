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

/**
 * `parent.child(bindings)`, made on first use. Every request and WebSocket connection gets a
 * context with its own logger, and most never log; a pino child with redaction configured costs
 * about 27 KB of garbage to make (bench/README, session 12).
 */
export function lazyChild(parent: Logger, bindings: Record<string, unknown>): Logger {
  let child: Logger | undefined;
  const get = () => (child ??= parent.child(bindings));
  const level =
    (name: 'debug' | 'info' | 'warn' | 'error'): LogFn =>
    (...args: [object, string?] | [string]) =>
      (get()[name] as (...a: typeof args) => void)(...args);
  return {
    debug: level('debug'),
    info: level('info'),
    warn: level('warn'),
    error: level('error'),
    child: (more) => get().child(more),
  };
}

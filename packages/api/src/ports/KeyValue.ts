export type SetOptions = {
  ttlMs?: number;
  /** Only set when the key does not exist; `set` then answers whether it wrote. */
  ifNotExists?: boolean;
  /** Only set when the key exists (is live); `set` then answers whether it wrote. */
  ifExists?: boolean;
};

export type Lock = {
  /** Gives the lock back if this holder still owns it; a no-op once it expired. */
  release(): Promise<void>;
  /**
   * Makes the lease last `ttlMs` from now if this holder still owns it. False once it expired or
   * another caller took it: the lease is then neither revived nor taken back.
   */
  extend(ttlMs: number): Promise<boolean>;
};

/** Short-lived shared state: OTP codes, counters, leases. Values are strings. */
export type KeyValue = {
  get(key: string): Promise<string | null>;
  set(key: string, value: string, options?: SetOptions): Promise<boolean>;
  del(key: string): Promise<boolean>;
  /** Adds `by` (default 1) and returns the new value; `ttlMs` applies when the key is created. */
  incr(key: string, options?: { by?: number; ttlMs?: number }): Promise<number>;
  /** Remaining lifetime in ms, null when the key is missing or has no expiry. */
  ttlMs(key: string): Promise<number | null>;
  /** A lease held by at most one caller across all instances until released or expired. */
  acquireLock(name: string, ttlMs: number): Promise<Lock | null>;
  close(): Promise<void>;
};

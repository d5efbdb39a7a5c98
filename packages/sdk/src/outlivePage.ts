/**
 * A call's context flag: `createMvpClient` sends such a call alone (a batch waits for a timer a
 * closing page may never run) with `fetch`'s `keepalive`, so that the browser still delivers it
 * after the page that made it is gone: a tab closed mid-call hangs up, a page signs out.
 */
export const OUTLIVE_PAGE = 'mvpOutlivePage';

export const outlivesPage = (op: { context: Record<string, unknown> }) =>
  op.context[OUTLIVE_PAGE] === true;

/** `fetch` with keepalive. Only for small calls: keepalive bodies share 64 KiB in flight. */
export const keptAlive =
  (fetchImpl: typeof fetch | undefined) => (url: Parameters<typeof fetch>[0], init?: RequestInit) =>
    (fetchImpl ?? globalThis.fetch)(url, { ...init, keepalive: true });

export type CallErrorCode =
  /** The callee has no device with published keys: nothing can ring, and nothing can be encrypted. */
  | 'NO_DEVICES'
  /** Calls have no `crypto`: E2EE is off in `createMvpClient` and no `calls.crypto` was given. */
  | 'NO_CALL_CRYPTO'
  /** The camera or microphone could not be opened (permission refused, no device). */
  | 'MEDIA_FAILED'
  /** This manager already has a live call. */
  | 'CALL_IN_PROGRESS'
  /** The action does not fit the call's state (accepting an outgoing call, an ended one). */
  | 'INVALID_STATE'
  /**
   * An incoming call's offer does not decrypt, names another call, or is too old: nothing
   * rings (reported to `onError`).
   */
  | 'INVALID_OFFER';

/** A typed failure of the CallManager itself (server errors stay tRPC errors: `errorCodeOf`). */
export class CallError extends Error {
  override readonly name = 'CallError';
  constructor(
    readonly code: CallErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export function isCallError(error: unknown): error is CallError {
  return error instanceof CallError;
}

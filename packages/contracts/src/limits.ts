/** Limits shared by server and clients, so the SDK can refuse early with the same numbers. */
export const DEFAULT_WS_MAX_PAYLOAD_BYTES = 64 * 1024;
export const DEFAULT_HTTP_MAX_BODY_BYTES = 1024 * 1024;

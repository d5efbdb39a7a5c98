import { answerBytesFor, type AnswerBytes } from './answerBytes';
import type { RateLimitRule } from './ports/RateLimiter';
import type { AuthInfo, Logger, Ports } from './ports';
import { lazyChild } from './ports/Logger';

type Limit = { points: number; durationSeconds: number };

export type AuthSettings = {
  accessTtlSeconds: number;
  refreshAbsoluteMs: number;
  refreshIdleMs: number;
  otp: { ttlSeconds: number; resendSeconds: number; maxAttempts: number };
  limits: {
    registerIp: Limit;
    loginIp: Limit;
    loginAccount: Limit;
    /** Logins showing a device cookie of the account, per cookie (instead of loginAccount). */
    loginDevice: Limit;
    otpSendIp: Limit;
    otpSendPhone: Limit;
    /** Codes this deployment sends at most, to anyone: a cap on the SMS bill. */
    otpSendAll: Limit;
    otpVerifyIp: Limit;
    refreshIp: Limit;
    refreshAccount: Limit;
  };
  /** Failed logins per identifier and address before waits start doubling, and their cap. */
  loginBackoff: { after: number; maxSeconds: number };
  deleteInactiveAfterDays: number;
};

export type ApiSettings = {
  /** The server's version, reported by system.info. */
  version: string;
  /** Budget per client address across all procedures. */
  ipRateLimit: RateLimitRule;
  auth: AuthSettings;
  people: {
    searchLimit: Limit;
    /** New contact requests per account (spam: each lands on someone's stream). */
    requestLimit: Limit;
  };
  calls: {
    stunUrls: string[];
    turnUrls: string[];
    turnSecret: string | undefined;
    turnTtlSeconds: number;
    ringTimeoutMs: number;
    heartbeatTimeoutMs: number;
    /** Largest encrypted SDP or ICE payload, in bytes. */
    maxPayloadBytes: number;
    startLimit: Limit;
    /** Per call and device: candidates, renegotiations, restarts. */
    signalLimit: Limit;
    iceLimit: Limit;
  };
  keys: {
    /** Most one-time prekeys one device may hold. */
    prekeyCap: number;
    /** Below this many, the device gets a `keys.low` event. */
    lowThreshold: number;
    /** Prekey bundle claims per account. */
    claimLimit: Limit;
    /** One-time prekeys one account may take from one user's devices (past it: none). */
    claimPairLimit: Limit;
    /** Claims that take one user's one-time prekeys, by everyone together (past it: none). */
    claimUserLimit: Limit;
  };
  messaging: {
    /** Largest message ciphertext, in decoded bytes. */
    maxCiphertextBytes: number;
    /** Most members a group may have. */
    groupMemberCap: number;
    /** Most unacknowledged envelopes one device may have waiting. */
    deviceQueueCap: number;
    /** Most of them from one sender (so that one account cannot fill the queue alone). */
    deviceQueueSenderCap: number;
    /** Events (and unacknowledged envelopes) older than this are deleted; older cursors resync. */
    retentionDays: number;
    /** How often an open event stream checks that its session still lives. */
    streamSessionCheckMs: number;
    /** An event stream waits while its connection holds more than this many unsent bytes. */
    streamBufferBytes: number;
    /** Sends per account: messages, envelope batches, edits, reactions, pins and deletions. */
    sendLimit: Limit;
  };
};

/**
 * The part of the context that the router's type shows. It is all that the published SDK's
 * types carry of the server, so it must not mention ports, Kysely or anything server-side.
 */
export type TransportContext = {
  requestId: string;
  transport: 'http' | 'ws';
};

/**
 * The WebSocket a request came on, for subscriptions that must not outrun a slow reader: the
 * server's sends are not flow-controlled (tRPC writes each item as it comes), so without a wait a
 * device that reads slowly would have its whole backlog queued in the server's memory.
 */
export type Connection = {
  /** Bytes handed to the connection and not yet to the network. */
  buffered(): number;
  /** Resolves once the connection has written out its buffer or closed, or `signal` aborted. */
  drained(signal: AbortSignal | undefined): Promise<void>;
  /** Event streams open on it now (each counts itself in and out). */
  streams: number;
  /**
   * Its session was found ended: the connection closes as a revocation closes it, so the
   * client signs in again and its user no longer counts as online through it.
   */
  sessionEnded(): void;
};

export type Context = TransportContext & {
  ports: Ports;
  settings: ApiSettings;
  log: Logger;
  ip: string;
  auth: AuthInfo | null;
  /** A token was presented and refused: authed procedures answer UNAUTHORIZED. */
  tokenRejected: boolean;
  /** Over WebSocket, the connection (over HTTP there is none). */
  connection: Connection | null;
  /** What stored content the answers may still carry, and their reads' lane (answerBytes.ts). */
  answerBytes: AnswerBytes;
  /**
   * The request's per-address point is paid already: the HTTP server spends it before reading
   * the body (so requests refused before any procedure pay too), and the calls do not again.
   */
  addressBudgetSpent: boolean;
};

export type ContextInput = {
  requestId: string;
  ip: string;
  transport: 'http' | 'ws';
  token: string | null;
  connection?: Connection;
  addressBudgetSpent?: boolean;
};

/** The only producer of contexts: every adapter (HTTP, WS, REST shim, tests) goes through it. */
export async function createContext(
  ports: Ports,
  settings: ApiSettings,
  input: ContextInput,
): Promise<Context> {
  const auth = input.token ? await ports.authenticate(input.token) : null;
  return {
    ports,
    settings,
    requestId: input.requestId,
    log: lazyChild(ports.logger, { requestId: input.requestId, transport: input.transport }),
    ip: input.ip,
    transport: input.transport,
    auth,
    tokenRejected: Boolean(input.token) && !auth,
    connection: input.connection ?? null,
    answerBytes: answerBytesFor(input.transport),
    addressBudgetSpent: input.addressBudgetSpent ?? false,
  };
}

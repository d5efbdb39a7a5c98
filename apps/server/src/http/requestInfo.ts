import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import ipaddr from 'ipaddr.js';
import proxyaddr from 'proxy-addr';

const SAFE_REQUEST_ID = /^[A-Za-z0-9._-]{8,64}$/;

/** Keeps a caller's X-Request-Id when it is harmless to log, so traces join up across hops. */
export function requestIdOf(req: IncomingMessage): string {
  const given = req.headers['x-request-id'];
  return typeof given === 'string' && SAFE_REQUEST_ID.test(given) ? given : randomUUID();
}

/**
 * The client's address for rate limits and logs. Behind `trustedProxies` proxies it is the
 * X-Forwarded-For entry that many hops back from the socket (proxy-addr), never the first entry:
 * a proxy appends what it saw and passes on whatever the client sent before it, so the first
 * entry is the client's to choose, and with it every per-address limit.
 */
export function clientIpOf(req: IncomingMessage, trustedProxies: number): string {
  // Hop 0 is the socket's address (the nearest proxy), then X-Forwarded-For from the right.
  const address =
    trustedProxies > 0
      ? proxyaddr(req, (_address, hop) => hop < trustedProxies)
      : req.socket.remoteAddress;
  return address === undefined ? 'unknown' : networkOf(address);
}

/**
 * What a per-address limit counts. An IPv6 client gets a whole /64 (the least an ISP hands one
 * subscriber) and picks any of its 2^64 addresses, one per request if it likes: the /64 is the
 * client. An IPv4 address is itself, also when it comes IPv4-mapped (`::ffff:192.0.2.1`).
 */
export function networkOf(address: string): string {
  if (!ipaddr.isValid(address)) return address;
  const parsed = ipaddr.process(address); // IPv4-mapped IPv6 becomes IPv4
  if (parsed.kind() === 'ipv4') return parsed.toString();
  const parts = (parsed as ipaddr.IPv6).parts.slice(0, 4);
  return `${new ipaddr.IPv6([...parts, 0, 0, 0, 0]).toString()}/64`;
}

/**
 * The request's path, or null when its target is not a URL. Node passes any request-line through
 * (`GET // HTTP/1.1` among them) and `new URL` throws on some: unguarded, in an 'upgrade'
 * listener that ended the process.
 */
export function pathnameOf(req: IncomingMessage): string | null {
  try {
    return new URL(req.url ?? '/', 'http://localhost').pathname;
  } catch {
    return null;
  }
}

/**
 * Whether the Host header can be part of a URL. tRPC's adapters (and the REST shim through them)
 * build the request's URL from it and throw on one that cannot (`Host: [`): a 500 and an error
 * log with a stack, for a header anyone can send.
 */
export function hostValid(req: IncomingMessage): boolean {
  const host = req.headers.host;
  return host === undefined || URL.canParse(`http://${host}/`);
}

/** Whether the request says a body follows (no Content-Length and no Transfer-Encoding: none). */
export function declaresBody(req: IncomingMessage): boolean {
  if (req.headers['transfer-encoding'] !== undefined) return true;
  return Number(req.headers['content-length'] ?? 0) > 0;
}

/**
 * The path as the logs keep it. An invite's code is the capability to join its conversation
 * (whoever holds it can), and the REST routes carry it in the path (`/invites/{code}`): logs
 * reach more people than a private group does.
 */
export function loggablePath(pathname: string): string {
  return pathname.replace(/\/invites\/[^/]+/, '/invites/:code');
}

/** A shared secret compared in constant time (digests, so lengths do not tell either). */
export function sameSecret(given: string | null, expected: string): boolean {
  if (given === null) return false;
  const digest = (s: string) => createHash('sha256').update(s).digest();
  return timingSafeEqual(digest(given), digest(expected));
}

export function bearerTokenOf(req: IncomingMessage): string | null {
  const header = req.headers.authorization;
  if (!header) return null;
  const match = /^Bearer\s+(\S+)$/i.exec(header);
  return match?.[1] ?? null;
}

/** `Origin` absent (non-browser clients) is allowed; present, it must be on the list. */
export function originAllowed(origin: string | undefined, allowed: readonly string[]): boolean {
  return origin === undefined || allowed.includes(origin);
}

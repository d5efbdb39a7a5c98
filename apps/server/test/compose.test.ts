import { readFileSync } from 'node:fs';
import { isIPv4, isIPv6 } from 'node:net';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { configFromEnv } from '../src/config';
import { ENV_VARIABLES, parseEnv } from '../src/env';

// Deployment files drift silently: a renamed variable in compose is just ignored by the server.
const read = (file: string) =>
  readFileSync(fileURLToPath(new URL(`../../../${file}`, import.meta.url)), 'utf8');

type Service = {
  image?: string;
  command?: string | string[];
  healthcheck?: { test: unknown };
  depends_on?: Record<string, unknown> | string[];
  environment?: Record<string, unknown>;
  volumes?: string[];
  ports?: string[];
};

/**
 * Compose's `${VAR}`, `${VAR:-default}`, `${VAR:+alternative}` and `${VAR:?error}` (un-nested, the
 * only forms the file uses), so a test can see what a value becomes with and without a variable
 * set. Like compose, `:?` refuses a variable that is unset or empty.
 */
const interpolate = (value: string, vars: Record<string, string>) =>
  value.replace(
    /\$\{(\w+)(?:(:-|:\+|:\?)([^}]*))?\}/g,
    (_: string, name: string, op: string | undefined, arg: string | undefined): string => {
      const set = vars[name];
      if (op === ':+') return set ? (arg ?? '') : '';
      if (op === ':?' && !set) throw new Error(`required variable ${name} is missing: ${arg}`);
      return set || (op === ':-' ? (arg ?? '') : '');
    },
  );

type Range = { v6: boolean; start: bigint; end: bigint };

/** An address as a number; IPv6 may end in dotted IPv4 (::ffff:1.2.3.4). */
function ipNumber(ip: string): { v6: boolean; n: bigint } {
  if (isIPv4(ip))
    return { v6: false, n: ip.split('.').reduce((acc, o) => (acc << 8n) | BigInt(o), 0n) };
  if (!isIPv6(ip)) throw new Error(`not an IP address: ${ip}`);
  const dotted = /\d+\.\d+\.\d+\.\d+$/.exec(ip)?.[0];
  const low = dotted ? ipNumber(dotted).n : 0n;
  const text = dotted
    ? `${ip.slice(0, -dotted.length)}${(low >> 16n).toString(16)}:${(low & 0xffffn).toString(16)}`
    : ip;
  const [head = '', tail] = text.split('::');
  const groups = (part: string) => (part ? part.split(':') : []);
  const all =
    tail === undefined
      ? groups(head)
      : [
          ...groups(head),
          ...Array<string>(8 - groups(head).length - groups(tail).length).fill('0'),
          ...groups(tail),
        ];
  return { v6: true, n: all.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g, 16)), 0n) };
}

/** `first-last`, one address, or CIDR (coturn 4.6 rejects CIDR, so the file uses ranges). */
function rangeOf(spec: string): Range {
  const [first, last] = spec.split('-') as [string, string | undefined];
  if (first.includes('/')) {
    const [addr, len] = first.split('/') as [string, string];
    const { v6, n } = ipNumber(addr);
    const size = 1n << BigInt((v6 ? 128 : 32) - Number(len));
    return { v6, start: n - (n % size), end: n - (n % size) + size - 1n };
  }
  const start = ipNumber(first);
  return { v6: start.v6, start: start.n, end: ipNumber(last ?? first).n };
}

describe('docker-compose.yml', () => {
  const { services } = parse(read('docker-compose.yml')) as { services: Record<string, Service> };

  it('runs MySQL 8.4, Redis 7, coturn and the server, each checked for health', () => {
    const { mysql, redis, coturn, server } = services;
    expect(mysql?.image).toMatch(/^mysql:8\.4/);
    // MySQL 8 logs every row for 30 days by default (deleted messages too); one server feeds no
    // replica.
    expect([mysql?.command ?? []].flat()).toContain('--skip-log-bin');
    expect(redis?.image).toMatch(/^redis:7/);
    expect(coturn).toBeDefined();
    for (const name of ['mysql', 'redis', 'server']) {
      expect(services[name]?.healthcheck?.test, name).toBeDefined();
    }
    const dependsOn = server?.depends_on ?? {};
    const deps = Array.isArray(dependsOn) ? dependsOn : Object.keys(dependsOn);
    expect(deps).toEqual(expect.arrayContaining(['mysql', 'redis']));
  });

  it('gives the server only variables that env.ts knows', () => {
    const names = Object.keys(services.server?.environment ?? {});
    expect(names.length).toBeGreaterThan(0);
    expect(names.filter((name) => !ENV_VARIABLES.includes(name))).toEqual([]);
  });

  it('keeps avatars in MinIO: bucket and a bucket-only user made first, root keys not shared', () => {
    const { minio, server } = services;
    const init = services['minio-init'];
    expect(minio?.image).toMatch(/^minio\/minio/);
    expect(minio?.healthcheck?.test).toBeDefined();
    expect(init?.image).toMatch(/^minio\/mc/);
    expect(server?.depends_on).toMatchObject({
      'minio-init': { condition: 'service_completed_successfully' },
    });
    const env = server?.environment ?? {};
    expect(env).toMatchObject({
      MVP_S3_BUCKET: 'mvp-avatars',
      MVP_S3_ENDPOINT: 'http://minio:9000',
      MVP_S3_FORCE_PATH_STYLE: 'true',
    });
    const script = [init?.command ?? ''].flat().join('\n');
    expect(script).toContain('mc mb --ignore-existing local/mvp-avatars');
    expect(String(env.MVP_S3_SECRET_ACCESS_KEY)).not.toContain('MINIO_ROOT');
  });

  // A list is one argument per item (a required variable's message has spaces); a string splits.
  const coturnArgs = () => {
    const command = services.coturn?.command ?? [];
    return typeof command === 'string' ? command.split(' ') : command;
  };
  const serverEnv = () => services.server?.environment ?? {};

  it('gives coturn and the server one shared secret: the same variable, required', () => {
    const args = coturnArgs();
    expect(args).toContain('--use-auth-secret');
    const coturnSecret = args
      .find((a) => a.startsWith('--static-auth-secret='))
      ?.slice('--static-auth-secret='.length);
    const serverSecret = String(serverEnv().MVP_TURN_SECRET);
    // A variable without a default: coturn's port is public, and a secret everyone can read in
    // this file would let anyone mint TURN credentials. Compose refuses to start without it.
    expect(coturnSecret).toMatch(/^\$\{TURN_SECRET:\?[^}]+\}$/);
    expect(coturnSecret).toBe(serverSecret);
    for (const vars of [{}, { TURN_SECRET: '' }] as Record<string, string>[])
      expect(() => interpolate(serverSecret, vars)).toThrow(/TURN_SECRET/);
    const vars = { TURN_SECRET: 'an-operator-chosen-secret-0123456789' };
    expect(interpolate(coturnSecret!, vars)).toBe('an-operator-chosen-secret-0123456789');
    expect(interpolate(serverSecret, vars)).toBe('an-operator-chosen-secret-0123456789');
  });

  it('refuses to relay into loopback, private, link-local, CGNAT and mapped addresses', () => {
    const args = coturnArgs();
    const denied = args
      .filter((a) => a.startsWith('--denied-peer-ip='))
      .map((a) => rangeOf(a.slice('--denied-peer-ip='.length)));
    // An allowed-peer-ip would punch a hole in the list below.
    expect(args.filter((a) => a.startsWith('--allowed-peer-ip'))).toEqual([]);
    expect(args).toContain('--no-multicast-peers');
    const mustDeny = [
      '0.0.0.0/8', // "this network": 0.0.0.0 reaches the host itself on Linux
      '10.0.0.0/8',
      '100.64.0.0/10', // carrier-grade NAT
      '127.0.0.0/8',
      '169.254.0.0/16', // link-local, and cloud metadata at 169.254.169.254
      '172.16.0.0/12',
      '192.168.0.0/16',
      '198.18.0.0/15',
      '240.0.0.0/4',
      '::/128',
      '::1/128',
      '::ffff:0.0.0.0/96', // IPv4-mapped: ::ffff:127.0.0.1 is loopback
      '64:ff9b::/96', // NAT64 to any IPv4 address, private ones included
      '64:ff9b:1::/48', // local-use NAT64 (RFC 8215), the same
      'fc00::/7', // unique local
      'fe80::/10', // link-local
    ];
    const uncovered = mustDeny.filter((cidr) => {
      const want = rangeOf(cidr);
      return !denied.some((d) => d.v6 === want.v6 && d.start <= want.start && d.end >= want.end);
    });
    expect(uncovered).toEqual([]);
  });

  it('serves TURN over TLS on 5349 from a mounted certificate, and offers turns: only when asked', () => {
    const args = coturnArgs();
    expect(args).toContain('--tls-listening-port=5349');
    expect(args).not.toContain('--no-tls');
    const certDir = '/etc/coturn/tls/';
    expect(args.find((a) => a.startsWith('--cert='))).toMatch(`--cert=${certDir}`);
    expect(args.find((a) => a.startsWith('--pkey='))).toMatch(`--pkey=${certDir}`);
    expect(services.coturn?.volumes).toContain('${TURN_TLS_DIR:-./turn-tls}:/etc/coturn/tls:ro');
    expect(services.coturn?.ports).toContain('5349:5349/tcp');

    // What the server is configured with, with and without TURN_TLS_HOST; env.ts must accept it.
    const iceConfig = (vars: Record<string, string>) => {
      const env = serverEnv();
      const pick = ['NODE_ENV', 'MVP_STUN_URLS', 'MVP_TURN_URLS', 'MVP_TURN_SECRET'] as const;
      const given = { TURN_SECRET: 'an-operator-chosen-secret-0123456789', ...vars };
      return configFromEnv(
        parseEnv(
          Object.fromEntries(pick.map((name) => [name, interpolate(String(env[name]), given)])),
        ),
      ).calls;
    };
    expect(iceConfig({}).turnUrls).toEqual([
      'turn:localhost:3478?transport=udp',
      'turn:localhost:3478?transport=tcp',
    ]);
    const withTls = iceConfig({ TURN_HOST: '203.0.113.7', TURN_TLS_HOST: 'turn.example.com' });
    expect(withTls.turnUrls).toEqual([
      'turn:203.0.113.7:3478?transport=udp',
      'turn:203.0.113.7:3478?transport=tcp',
      'turns:turn.example.com:5349?transport=tcp',
    ]);
    expect(withTls.stunUrls).toEqual(['stun:203.0.113.7:3478']);
    // The placeholder this file once defaulted to, set by hand, still stops the server.
    expect(() => iceConfig({ TURN_SECRET: 'change-me-turn-secret' })).toThrow(
      /^invalid environment: MVP_TURN_SECRET: /,
    );
  });
});

describe('.env.example and Dockerfile', () => {
  it('documents every variable the server reads', () => {
    const example = read('.env.example');
    const missing = ENV_VARIABLES.filter((name) => !new RegExp(`^#? ?${name}=`, 'm').test(example));
    expect(missing).toEqual([]);
  });

  it('leaves TURN_SECRET empty: a copied .env.example gives coturn no published secret', () => {
    expect(/^TURN_SECRET=(.*)$/m.exec(read('.env.example'))?.[1]).toBe('');
  });

  it('builds in one stage and runs in another', () => {
    expect(read('Dockerfile').match(/^FROM /gm)?.length ?? 0).toBeGreaterThanOrEqual(2);
  });
});

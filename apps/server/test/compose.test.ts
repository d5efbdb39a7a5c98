import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { ENV_VARIABLES } from '../src/env';

// Deployment files drift silently: a renamed variable in compose is just ignored by the server.
const read = (file: string) =>
  readFileSync(fileURLToPath(new URL(`../../../${file}`, import.meta.url)), 'utf8');

type Service = {
  image?: string;
  command?: string | string[];
  healthcheck?: { test: unknown };
  depends_on?: Record<string, unknown> | string[];
  environment?: Record<string, unknown>;
};

// coturn 4.6 rejects CIDR here, so ranges are written first-last; accept either spelling.
const denies = (command: string, cidr: string, range: string) =>
  command.includes(`denied-peer-ip=${cidr}`) || command.includes(`denied-peer-ip=${range}`);

describe('docker-compose.yml', () => {
  const { services } = parse(read('docker-compose.yml')) as { services: Record<string, Service> };

  it('runs MySQL 8.4, Redis 7, coturn and the server, each checked for health', () => {
    const { mysql, redis, coturn, server } = services;
    expect(mysql?.image).toMatch(/^mysql:8\.4/);
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

  it('runs coturn on shared-secret credentials and refuses to relay into private networks', () => {
    const { command = '' } = services.coturn ?? {};
    const text = Array.isArray(command) ? command.join(' ') : command;
    expect(text).toContain('use-auth-secret');
    expect(denies(text, '127.0.0.0/8', '127.0.0.0-127.255.255.255')).toBe(true);
    expect(denies(text, '10.0.0.0/8', '10.0.0.0-10.255.255.255')).toBe(true);
  });
});

describe('.env.example and Dockerfile', () => {
  it('documents every variable the server reads', () => {
    const example = read('.env.example');
    const missing = ENV_VARIABLES.filter((name) => !new RegExp(`^#? ?${name}=`, 'm').test(example));
    expect(missing).toEqual([]);
  });

  it('builds in one stage and runs in another', () => {
    expect(read('Dockerfile').match(/^FROM /gm)?.length ?? 0).toBeGreaterThanOrEqual(2);
  });
});

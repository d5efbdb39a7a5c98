import { describe, expect, it } from 'vitest';
import { configFromEnv } from '../src/config';
import { EnvError, parseEnv } from '../src/env';

describe('env', () => {
  it('gives every variable a safe default: embedded SQLite, loopback, no browser origins', () => {
    const config = configFromEnv(parseEnv({}));
    expect(config).toMatchObject({
      host: '127.0.0.1',
      port: 3000,
      databaseUrl: 'sqlite:./data/mvp.db',
      redisUrl: undefined,
      allowedOrigins: [],
      wsMaxPayloadBytes: 65_536,
      migrateOnStart: true,
    });
  });

  it('parses lists, numbers and booleans', () => {
    const env = parseEnv({
      MVP_ALLOWED_ORIGINS: 'https://app.example.com, http://localhost:5173/',
      MVP_PORT: '8080',
      MVP_TRUST_PROXY: 'true',
      REDIS_URL: 'redis://127.0.0.1:6379',
    });
    expect(env.MVP_ALLOWED_ORIGINS).toEqual(['https://app.example.com', 'http://localhost:5173']);
    expect(env.MVP_PORT).toBe(8080);
    expect(env.MVP_TRUST_PROXY).toBe(1);
    expect(parseEnv({ MVP_TRUST_PROXY: '2' }).MVP_TRUST_PROXY).toBe(2);
    expect(parseEnv({ MVP_TRUST_PROXY: 'false' }).MVP_TRUST_PROXY).toBe(0);
  });

  it.each([
    ['MVP_PORT', '70000'],
    ['DATABASE_URL', 'postgres://x'],
    ['REDIS_URL', 'http://redis'],
    ['MVP_ALLOWED_ORIGINS', 'not a url'],
    ['MVP_METRICS_TOKEN', 'short'],
    ['NODE_ENV', 'staging'],
    ['MVP_TRUST_PROXY', 'yes'],
  ])('refuses %s=%s with a one-line message naming the variable', (name, value) => {
    let error: unknown;
    try {
      parseEnv({ [name]: value });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(EnvError);
    const message = (error as EnvError).message;
    expect(message).toMatch(new RegExp(`^invalid environment: ${name}: `));
    expect(message).not.toContain('\n');
    expect(message).not.toContain(value);
  });
});

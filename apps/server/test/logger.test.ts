import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../src/logger';

function captured() {
  let text = '';
  const destination = new Writable({
    write(chunk: Buffer, _enc, done) {
      text += chunk.toString();
      done();
    },
  });
  return { destination, text: () => text };
}

describe('logger', () => {
  it('redacts authorization headers, tokens, passwords and OTP codes at any common depth', () => {
    const out = captured();
    const logger = createLogger({ level: 'info', destination: out.destination });
    logger.info(
      {
        req: { headers: { authorization: 'Bearer eyJ-secret-jwt' } },
        token: 'tok-secret-1',
        refreshToken: 'tok-secret-2',
        input: {
          password: 'hunter2-secret',
          otp: '123456',
          nested: { accessToken: 'tok-secret-3' },
        },
        connectionParams: { token: 'tok-secret-4' },
        err: {
          message: 'Deadlock',
          sql: "UPDATE users SET password_hash = '$argon2id$sql-secret'",
        },
        userId: 'u-visible',
      },
      'hello',
    );
    const line = out.text();
    for (const secret of [
      'eyJ-secret-jwt',
      'tok-secret-1',
      'tok-secret-2',
      'tok-secret-3',
      'tok-secret-4',
      'hunter2',
      '123456',
      'sql-secret',
    ]) {
      expect(line).not.toContain(secret);
    }
    expect(line).toContain('u-visible');
    expect(line).toContain('[redacted]');
  });

  it('writes one JSON object per line with level, time and message', () => {
    const out = captured();
    createLogger({ level: 'info', destination: out.destination }).warn({ a: 1 }, 'careful');
    const parsed = JSON.parse(out.text().trim()) as Record<string, unknown>;
    expect(parsed).toMatchObject({ level: 40, msg: 'careful', a: 1, service: 'mvp' });
    expect(typeof parsed.time).toBe('string');
  });
});

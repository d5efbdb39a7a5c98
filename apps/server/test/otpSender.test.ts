import { createServer as createHttpServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultConfig } from '../src/config';
import { createServer } from '../src/createServer';
import {
  signWebhook,
  SIGNATURE_HEADER,
  TIMESTAMP_HEADER,
} from '../src/adapters/otp/webhookOtpSender';
import { DEVICE, freshPhone, PASSWORD, startPhoneRegistration } from './helpers/accounts';
import { eventQueue } from './helpers/collect';
import { startServer, testAuthConfig, type TestServer } from './helpers/startServer';
import { backendLabel } from './helpers/env';

type Delivery = { headers: IncomingMessage['headers']; body: string };

describe(`OTP delivery through the webhook sender (${backendLabel})`, () => {
  const secret = 'webhook-secret-0123456789';
  const deliveries = eventQueue<Delivery>();
  let status = 200;
  const gateway = createHttpServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      deliveries.push({ headers: req.headers, body });
      res.statusCode = status;
      // Where a redirect would send it on: the gateway's own path, so a follow shows there.
      if (status === 307) res.setHeader('location', req.url === '/otp' ? '/elsewhere' : '/otp');
      res.end();
    });
  });
  let t: TestServer;

  beforeAll(async () => {
    await new Promise<void>((r) => gateway.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(gateway.address() as AddressInfo).port}/otp`;
    t = await startServer(
      {},
      {
        auth: {
          otp: {
            ...testAuthConfig().otp,
            sender: 'webhook',
            webhookUrl: url,
            webhookSecret: secret,
          },
        },
      },
    );
  });
  afterAll(async () => {
    await t.stop();
    gateway.close();
  });

  it('POSTs {to, code, purpose} signed with HMAC over timestamp and body; the code works', async () => {
    const phone = freshPhone();
    const pending = await startPhoneRegistration(t, phone, 'W');
    const { headers, body } = await deliveries.next();
    const message = JSON.parse(body) as { to: string; code: string; purpose: string };
    expect(message).toEqual({
      to: phone,
      code: expect.stringMatching(/^\d{6}$/) as string,
      purpose: 'register',
    });
    const timestamp = String(headers[TIMESTAMP_HEADER]);
    expect(headers[SIGNATURE_HEADER]).toBe(signWebhook(secret, timestamp, body));
    expect(Math.abs(Number(timestamp) - Date.now() / 1000)).toBeLessThan(60);
    expect(t.logs.text()).not.toContain(message.code); // the webhook sender never logs the code
    const tokens = await t.client.api.auth.otp.verify.mutate({
      challengeId: pending.challengeId,
      code: message.code,
    });
    expect(tokens.status).toBe('ok');
  });

  it('a gateway failure is SERVICE_UNAVAILABLE and stores nothing', async () => {
    status = 500;
    const phone = freshPhone();
    const error = await t.client.api.auth.register
      .mutate({ phone, password: PASSWORD, displayName: 'W', device: DEVICE })
      .catch((e: unknown) => e as { data: { appCode: string } });
    status = 200;
    await deliveries.next();
    expect((error as { data: { appCode: string } }).data.appCode).toBe('SERVICE_UNAVAILABLE');
  });

  it('a redirect is not followed: the code goes nowhere else, and the send fails', async () => {
    status = 307;
    const error = await t.client.api.auth.register
      .mutate({ phone: freshPhone(), password: PASSWORD, displayName: 'W', device: DEVICE })
      .catch((e: unknown) => e as { data: { appCode: string } });
    status = 200;
    expect((error as { data: { appCode: string } }).data.appCode).toBe('SERVICE_UNAVAILABLE');
    await deliveries.next(); // the one POST to the gateway
    expect(deliveries.size).toBe(0); // and none to where it pointed
  });
});

describe('OTP sender configuration', () => {
  it('refuses the development log sender in production', async () => {
    const config = defaultConfig({
      nodeEnv: 'production',
      port: 0,
      databaseUrl: 'sqlite::memory:',
      logLevel: 'silent',
    });
    await expect(createServer(config)).rejects.toThrow(/MVP_OTP_SENDER=log/);
  });

  it('refuses a webhook sender without URL or secret', async () => {
    const base = defaultConfig({ port: 0, databaseUrl: 'sqlite::memory:', logLevel: 'silent' });
    const config = {
      ...base,
      auth: { ...base.auth, otp: { ...base.auth.otp, sender: 'webhook' as const } },
    };
    await expect(createServer(config)).rejects.toThrow(/MVP_OTP_WEBHOOK_URL/);
  });
});

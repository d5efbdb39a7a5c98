import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runJobsOnce } from '@mvp/api';
import { clientWithToken, DEVICE, freshPhone, PASSWORD, registerByPhone } from './helpers/accounts';
import { startServer, type TestServer } from './helpers/startServer';
import { backendLabel, testDatabaseUrl } from './helpers/env';

const key = () => randomBytes(32).toString('base64');

describe(`personal data at rest (${backendLabel})`, () => {
  // A database file that outlives one server, so a second server can rotate keys over it.
  const databaseUrl = testDatabaseUrl.startsWith('sqlite')
    ? `sqlite:${join(mkdtempSync(join(tmpdir(), 'mvp-pd-')), 'mvp.db')}`
    : testDatabaseUrl;
  // The blind-index key stays the test servers' shared one (helpers/testKeys.ts).
  const [k1, k2] = [key(), key()];
  // One data folder for the three servers, as one deployment has.
  const dataDir = mkdtempSync(join(tmpdir(), 'mvp-pd-data-'));
  const servers: TestServer[] = [];
  const start = async (dataKeys: { id: string; key: string }[]) => {
    const t = await startServer({ databaseUrl, dataDir }, { auth: { dataKeys } });
    servers.push(t);
    return t;
  };
  afterAll(async () => {
    await Promise.all(servers.map((s) => s.stop()));
  });

  it('stores no plaintext phone or name, finds phones by blind index, and rotates keys in the background', async () => {
    const phone = freshPhone();
    const displayName = `Rosalind ${randomBytes(4).toString('hex')}`;
    const a = await start([{ id: 'k1', key: k1 }]);
    const tokens = await registerByPhone(a, phone, displayName);

    const rawRow = () =>
      a.server.infra.ports.db
        .selectFrom('users')
        .selectAll()
        .where('id', '=', tokens.user.id)
        .executeTakeFirstOrThrow();
    const row = await rawRow();
    const raw = JSON.stringify(row);
    expect(raw).not.toContain(phone);
    expect(raw).not.toContain(phone.slice(1));
    expect(raw).not.toContain(displayName);
    expect(row.phone_ciphertext).toMatch(/^v1\.k1\./);
    expect(row.display_name_ciphertext).toMatch(/^v1\.k1\./);
    expect(row.phone_index).toMatch(/^[0-9a-f]{64}$/);
    await a.stop();

    // Rotation: k2 is now the newest key; k1 still decrypts what is not re-encrypted yet.
    const b = await start([
      { id: 'k2', key: k2 },
      { id: 'k1', key: k1 },
    ]);
    expect(await clientWithToken(b, tokens.accessToken).api.me.get.query()).toMatchObject({
      phone,
      displayName,
    });
    const results = await runJobsOnce(b.server.infra.ports, b.server.settings);
    expect(results.reencryptPersonalData).toBeGreaterThanOrEqual(1);
    const rotated = await b.server.infra.ports.db
      .selectFrom('users')
      .selectAll()
      .where('id', '=', tokens.user.id)
      .executeTakeFirstOrThrow();
    expect(rotated.phone_ciphertext).toMatch(/^v1\.k2\./);
    expect(rotated.display_name_ciphertext).toMatch(/^v1\.k2\./);
    await b.stop();

    // Once everything is rotated the old key can go.
    const c = await start([{ id: 'k2', key: k2 }]);
    const login = await c.client.api.auth.login.mutate({
      identifier: phone,
      password: PASSWORD,
      device: DEVICE,
    });
    expect(login.status).toBe('ok');
    if (login.status !== 'ok') return;
    expect(await clientWithToken(c, login.accessToken).api.me.get.query()).toMatchObject({
      phone,
      displayName,
    });
  });
});

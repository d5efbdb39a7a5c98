import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMvpClient } from '@mvp/sdk';
import { DEVICE, PASSWORD } from './helpers/accounts';
import { backendLabel, testDatabaseUrl, testRedisUrl } from './helpers/env';
import { spawnServer, type SpawnedServer } from './helpers/spawnServer';
import { openStream } from './helpers/sync';

// Several processes share a database and a bus only in production (MySQL + Redis). On the
// embedded setup "the other instance" is the same process, so the same steps check one instance.
const processes = testRedisUrl ? 2 : 1;

describe(`the sync stream across ${processes} server process(es) (${backendLabel})`, () => {
  const spawned: SpawnedServer[] = [];
  let a: string;
  let b: string;
  beforeAll(async () => {
    const shared = {
      MVP_REDIS_PREFIX: `test:${randomUUID()}:`,
      DATABASE_URL: testDatabaseUrl.startsWith('sqlite')
        ? `sqlite:${join(mkdtempSync(join(tmpdir(), 'mvp-sync-')), 'mvp.db')}`
        : testDatabaseUrl,
    };
    for (let i = 0; i < processes; i++) spawned.push(await spawnServer(shared));
    a = spawned[0]!.url;
    b = spawned.at(-1)!.url;
  });
  afterAll(async () => {
    for (const s of spawned) s.child.kill('SIGTERM');
    await Promise.all(spawned.map((s) => s.exited));
  });

  const register = async (url: string) => {
    const res = await createMvpClient({ url }).api.auth.register.mutate({
      username: `s_${randomBytes(5).toString('hex')}`,
      password: PASSWORD,
      displayName: 'Sync',
      device: DEVICE,
    });
    if (res.status !== 'ok') throw new Error('expected tokens');
    return { token: res.accessToken, userId: res.user.id };
  };
  const apiAt = (url: string, token: string) => createMvpClient({ url, getToken: () => token }).api;
  const send = (url: string, token: string, conversationId: string, text: string) =>
    apiAt(url, token).messages.send.mutate({
      conversationId,
      clientMessageId: randomBytes(8).toString('hex'),
      contentType: 'text/plain',
      ciphertext: Buffer.from(text).toString('base64'),
    });

  it('a device on one instance hears what was sent through the other, and resumes after moving', async () => {
    const [alice, bob] = [await register(a), await register(b)];
    const chat = await apiAt(a, alice.token).conversations.create.mutate({
      kind: 'direct',
      userId: bob.userId,
    });
    const start = (await apiAt(b, bob.token).sync.snapshot.query()).cursor;

    // Bob's phone is connected to B; Alice writes through A.
    let phone = await openStream(b, bob.token, start);
    for (let i = 1; i <= 3; i++) await send(a, alice.token, chat.id, `via A ${i}`);
    const seen: number[] = [];
    let lastId = start;
    for (let i = 0; i < 3; i++) {
      const got = await phone.next('message.new');
      seen.push(got.event.message.seq);
      lastId = got.id;
    }
    await phone.close();

    // Offline, then back through the other instance: exactly what was missed, once, in order.
    await Promise.all([
      send(a, alice.token, chat.id, 'while away 1'),
      send(b, alice.token, chat.id, 'while away 2'),
    ]);
    await send(b, alice.token, chat.id, 'while away 3');
    phone = await openStream(a, bob.token, lastId);
    for (let i = 0; i < 3; i++) seen.push((await phone.next('message.new')).event.message.seq);
    expect(seen).toEqual([1, 2, 3, 4, 5, 6]);
    expect(phone.events.size).toBe(0);
    await phone.close();
  });
});

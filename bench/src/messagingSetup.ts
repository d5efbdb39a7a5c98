import { randomBytes } from 'node:crypto';
import { BENCH_DEVICE, BENCH_PASSWORD } from './loginLoad';

/** A registered account: its user id and an access token for its (first) device. */
export type BenchUser = { userId: string; username: string; token: string };
/** A conversation and its members, in the order they were given. */
export type BenchConversation = { id: string; members: BenchUser[] };

type TrpcAnswer = { result?: { data?: { json?: unknown } }; error?: unknown };

/** One tRPC call over HTTP (superjson body `{ json }`), as the SDK's HTTP link sends it. */
export async function callHttp(
  trpcUrl: string,
  path: string,
  input: unknown,
  token?: string,
): Promise<unknown> {
  const res = await fetch(`${trpcUrl}/${path}`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      ...(token ? { authorization: `Bearer ${token}` } : {}),
    },
    body: JSON.stringify({ json: input }),
  });
  const text = await res.text();
  const answer = JSON.parse(text) as TrpcAnswer;
  if (res.status !== 200 || answer.error !== undefined)
    throw new Error(`${path}: ${res.status} ${text.slice(0, 300)}`);
  return answer.result?.data?.json;
}

/** `n` at a time: registration runs argon2, which the server caps at its core count anyway. */
async function inBatches<T, R>(items: T[], n: number, run: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = [];
  for (let i = 0; i < items.length; i += n)
    out.push(...(await Promise.all(items.slice(i, i + n).map(run))));
  return out;
}

/** Registers `count` fresh accounts (setup, not measured). */
export function registerUsers(trpcUrl: string, count: number): Promise<BenchUser[]> {
  const tag = randomBytes(3).toString('hex');
  return inBatches(
    Array.from({ length: count }, (_, i) => i),
    4,
    async (i) => {
      const username = `m${tag}_${i}`;
      const answer = (await callHttp(trpcUrl, 'auth.register', {
        username,
        password: BENCH_PASSWORD,
        displayName: 'Bench',
        device: BENCH_DEVICE,
      })) as { status: string; accessToken: string; user: { id: string } };
      if (answer.status !== 'ok') throw new Error(`register: ${JSON.stringify(answer)}`);
      return { userId: answer.user.id, username, token: answer.accessToken };
    },
  );
}

/** The same account signed in on another device: the answer holds that device's token. */
export async function anotherDevice(trpcUrl: string, user: BenchUser): Promise<BenchUser> {
  const answer = (await callHttp(trpcUrl, 'auth.login', {
    identifier: user.username,
    password: BENCH_PASSWORD,
    device: { ...BENCH_DEVICE, name: 'bench second device' },
  })) as { status: string; accessToken: string };
  if (answer.status !== 'ok') throw new Error(`login: ${JSON.stringify(answer)}`);
  return { ...user, token: answer.accessToken };
}

/** One direct conversation per pair `[users[2i], users[2i+1]]`. */
export function createPairs(trpcUrl: string, users: BenchUser[]): Promise<BenchConversation[]> {
  const pairs = Array.from({ length: Math.floor(users.length / 2) }, (_, i) => [
    users[2 * i]!,
    users[2 * i + 1]!,
  ]);
  return inBatches(pairs, 8, async ([a, b]) => {
    const chat = (await callHttp(
      trpcUrl,
      'conversations.create',
      { kind: 'direct', userId: b!.userId },
      a!.token,
    )) as { id: string };
    return { id: chat.id, members: [a!, b!] };
  });
}

/**
 * A group of all `users`, created by the first: a group takes only the creator's contacts, so
 * every other member and the creator first request each other (a mutual request is accepted).
 */
export async function createGroup(trpcUrl: string, users: BenchUser[]): Promise<BenchConversation> {
  const [owner, ...others] = users;
  if (!owner) throw new Error('a group needs members');
  await inBatches(others, 8, async (other) => {
    // Each asks the owner and the owner's request back accepts it: the owner makes no new
    // request, which the server limits per account (50 a day).
    await callHttp(trpcUrl, 'contacts.request', { userId: owner.userId }, other.token);
    await callHttp(trpcUrl, 'contacts.request', { userId: other.userId }, owner.token);
  });
  const group = (await callHttp(
    trpcUrl,
    'conversations.create',
    { kind: 'group', title: 'Bench group', memberIds: others.map((u) => u.userId) },
    owner.token,
  )) as { id: string; memberCount: number };
  if (group.memberCount !== users.length)
    throw new Error(`group has ${group.memberCount} members, expected ${users.length}`);
  return { id: group.id, members: users };
}

/** The `messages.send` input of the load: `ciphertext` is random bytes, base64. */
export function sendInput(conversationId: string, clientMessageId: string, ciphertext: string) {
  return { conversationId, clientMessageId, contentType: 'text/plain', ciphertext };
}

export const randomCiphertext = (bytes: number) => randomBytes(bytes).toString('base64');

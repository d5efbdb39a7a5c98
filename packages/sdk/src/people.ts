import type { TRPCClient } from '@trpc/client';
import type { AppRouter } from '@mvp/api';
import type { RawSyncEvent } from './messaging';
import type { MvpSync, Subscription } from './syncTypes';
import type { RouterInputs, RouterOutputs } from './types';
import { withoutResult } from './withoutResult';

export type { Subscription };

type Out = RouterOutputs;
type In = RouterInputs;

/** Everything that arrives live about people: contact requests and their answers, blocks, presence. */
export type PeopleEvent = Extract<
  RawSyncEvent,
  { type: 'presence' | `contact.${string}` | `block.${string}` }
>;
export type PresenceEvent = Extract<PeopleEvent, { type: 'presence' }>;
/** Someone else's profile, as far as their privacy settings let me see it. */
export type PublicProfile = Out['users']['get'];
/** Online, or offline since `lastSeenAt`; null where its owner does not show it to me. */
export type Presence = PublicProfile['presence'];

export type LiveOptions = {
  /** The server has started the stream: from now on nothing is missed. */
  onStarted?: () => void;
  /** The stream failed for good (e.g. the session ended); it does not restart by itself. */
  onError?: (error: unknown) => void;
};

/** `client.people`: profiles, privacy, search, contacts and blocks, plus their live events. */
export type MvpPeople = {
  /** A profile by user id; NOT_FOUND for unknown users and users hidden from me alike. */
  get(userId: string): Promise<PublicProfile>;
  /** Exact username, unique id or phone, or a username prefix (paged with `cursor`). */
  search(input: In['users']['search']): Promise<Out['users']['search']>;
  privacy: {
    get(): Promise<Out['users']['privacy']>;
    update(changes: In['users']['updatePrivacy']): Promise<Out['users']['updatePrivacy']>;
  };
  contacts: {
    list(): Promise<Out['contacts']['list']>;
    /** Incoming and outgoing pending requests. */
    requests(): Promise<Out['contacts']['requests']>;
    /** Asks `userId`; if they already asked me, this accepts theirs (`status: 'accepted'`). */
    request(userId: string, message?: string): Promise<Out['contacts']['request']>;
    accept(requestId: string): Promise<void>;
    decline(requestId: string): Promise<void>;
    /** Withdraws a request I sent. */
    cancel(requestId: string): Promise<void>;
    remove(userId: string): Promise<void>;
  };
  blocks: {
    list(): Promise<Out['blocks']['list']>;
    /** Blocks (and un-contacts) someone; they are not told. */
    add(userId: string): Promise<void>;
    remove(userId: string): Promise<void>;
  };
  /** Every people event, live, over the client's WebSocket (opened on first use). */
  onEvent(handler: (event: PeopleEvent) => void, options?: LiveOptions): Subscription;
  /**
   * Presence changes of my contacts (throttled by the server; `presence` null when a contact
   * hides it). The current state of anyone is `get(userId).presence`.
   */
  onPresence(
    handler: (userId: string, presence: PresenceEvent['presence']) => void,
    options?: LiveOptions,
  ): Subscription;
};

const PEOPLE_TYPES = new Set<string>([
  'contact.request.received',
  'contact.request.sent',
  'contact.request.accepted',
  'contact.request.declined',
  'contact.request.cancelled',
  'contact.removed',
  'block.added',
  'block.removed',
  'presence',
] satisfies PeopleEvent['type'][]);

export function createPeopleClient(api: TRPCClient<AppRouter>, sync: MvpSync): MvpPeople {
  // People events ride the device's one sync stream (started here if the app has not): a
  // listener sees what arrives from the moment it is added.
  const onEvent: MvpPeople['onEvent'] = (handler, options = {}) => {
    const events = sync.onEvent(
      (event) => {
        if (PEOPLE_TYPES.has(event.type)) handler(event as PeopleEvent);
      },
      { onStarted: () => options.onStarted?.() },
    );
    const errors = sync.onError((error) => {
      if (sync.state === 'stopped') options.onError?.(error);
    });
    return {
      unsubscribe() {
        events.unsubscribe();
        errors.unsubscribe();
      },
    };
  };
  return {
    get: (userId) => api.users.get.query({ id: userId }),
    search: (input) => api.users.search.query(input),
    privacy: {
      get: () => api.users.privacy.query(),
      update: (changes) => api.users.updatePrivacy.mutate(changes),
    },
    contacts: {
      list: () => api.contacts.list.query(),
      requests: () => api.contacts.requests.query(),
      request: (userId, message) =>
        api.contacts.request.mutate(message === undefined ? { userId } : { userId, message }),
      accept: (id) => withoutResult(api.contacts.accept.mutate({ id })),
      decline: (id) => withoutResult(api.contacts.decline.mutate({ id })),
      cancel: (id) => withoutResult(api.contacts.cancel.mutate({ id })),
      remove: (userId) => withoutResult(api.contacts.remove.mutate({ userId })),
    },
    blocks: {
      list: () => api.blocks.list.query(),
      add: (userId) => withoutResult(api.blocks.add.mutate({ userId })),
      remove: (userId) => withoutResult(api.blocks.remove.mutate({ userId })),
    },
    onEvent,
    onPresence: (handler, options) =>
      onEvent((event) => {
        if (event.type === 'presence') handler(event.userId, event.presence);
      }, options),
  };
}

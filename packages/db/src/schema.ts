import type { Generated } from 'kysely';

/**
 * Column conventions, the same on both dialects: ids are app-generated strings (UUIDv7),
 * timestamps are BIGINT milliseconds since the epoch (SQLite has no date type and MySQL's
 * DATETIME drops the zone), booleans are 0/1 integers.
 */
export type AppMetaTable = {
  key: string;
  value: string;
  updated_at: number;
};

export type UsersTable = {
  id: string;
  unique_id: string;
  username: string | null;
  /** AES-256-GCM, see packages/api/src/security/fieldCipher.ts. */
  phone_ciphertext: string | null;
  /** HMAC-SHA256 blind index of the E.164 phone: lookup without plaintext. */
  phone_index: string | null;
  display_name_ciphertext: string;
  password_hash: string;
  require_otp_login: number;
  created_at: number;
  updated_at: number;
  last_active_at: number;
  /** Public by nature (shown per privacy rules), so not encrypted. */
  bio: string | null;
  avatar_key: string | null;
  privacy_find_by_phone: Generated<string>;
  privacy_presence: Generated<string>;
  privacy_requests: Generated<string>;
  last_seen_at: number | null;
  /** 1: my read positions reach other members; 0: only "delivered" does. */
  privacy_read_receipts: Generated<number>;
};

export type ContactRequestsTable = {
  id: string;
  from_user_id: string;
  to_user_id: string;
  message: string | null;
  created_at: number;
};

export type ContactsTable = { user_id: string; contact_id: string; created_at: number };
export type BlocksTable = { blocker_id: string; blocked_id: string; created_at: number };

export type DevicesTable = {
  id: string;
  user_id: string;
  name: string;
  platform: string;
  created_at: number;
  last_seen_at: number;
};

export type SessionsTable = {
  id: string;
  user_id: string;
  device_id: string;
  created_at: number;
  last_seen_at: number;
  /** Absolute end of the session (refresh tokens never outlive it). */
  expires_at: number;
  revoked_at: number | null;
  revoked_reason: string | null;
};

export type RefreshTokensTable = {
  token_hash: string;
  session_id: string;
  created_at: number;
  expires_at: number;
  used_at: number | null;
  /** The token this one was rotated from (its hash); null for a session's first. */
  parent_hash: string | null;
};

export type UserStreamsTable = {
  user_id: string;
  last_seq: Generated<number>;
  first_seq: Generated<number>;
};

export type UserEventsTable = {
  user_id: string;
  seq: number;
  /** A device-to-device envelope for this device only; null for all the user's devices. */
  device_id: string | null;
  type: string;
  /** JSON; message events hold `{ conversationId, seq }` and are filled in on read. */
  payload: string;
  created_at: number;
};

export type ConversationsTable = {
  id: string;
  kind: string;
  title: string | null;
  description: string | null;
  avatar_key: string | null;
  direct_key: string | null;
  last_seq: Generated<number>;
  member_count: Generated<number>;
  /** Minimum seconds between one member's messages (admins exempt); 0: off. */
  slow_mode_seconds: Generated<number>;
  /** New messages expire this many seconds after sending; 0: never. */
  disappear_seconds: Generated<number>;
  created_by: string;
  created_at: number;
  updated_at: number;
};

export type ConversationMembersTable = {
  conversation_id: string;
  user_id: string;
  role: string;
  joined_at: number;
  joined_seq: Generated<number>;
  delivered_seq: Generated<number>;
  read_seq: Generated<number>;
  /**
   * How far the other members were last told this member's positions reach (the read one only
   * while they share read receipts): a receipt tells the senders of the messages after these.
   */
  told_delivered_seq: Generated<number>;
  told_read_seq: Generated<number>;
  last_post_at: number | null;
};

export type MessagesTable = {
  conversation_id: string;
  seq: number;
  id: string;
  sender_id: string;
  sender_device_id: string;
  client_message_id: string;
  content_type: string;
  /** Opaque bytes; null once deleted for everyone (the tombstone keeps its place). */
  ciphertext: Uint8Array | null;
  reply_to_seq: number | null;
  forwarded: Generated<number>;
  created_at: number;
  edited_at: number | null;
  deleted_at: number | null;
  expires_at: number | null;
};

export type MessageHiddenTable = { user_id: string; conversation_id: string; seq: number };

/** Edits applied by their client edit id (see migration 2026-11-26T0000). */
export type MessageEditsTable = {
  conversation_id: string;
  seq: number;
  client_edit_id: string;
  created_at: number;
};

export type ReactionsTable = {
  conversation_id: string;
  seq: number;
  user_id: string;
  emoji: string;
  created_at: number;
};

export type PinsTable = {
  conversation_id: string;
  seq: number;
  pinned_by: string;
  created_at: number;
};

export type InvitesTable = {
  code: string;
  conversation_id: string;
  created_by: string;
  created_at: number;
  expires_at: number | null;
  max_uses: number | null;
  uses: Generated<number>;
  revoked_at: number | null;
};

/**
 * Who may not rejoin by invite as before, until an admin adds them back: removed by an admin
 * (`rejoin_as` null: not at all), or left while restricted (`rejoin_as` 'restricted': back in
 * as restricted). `banned_by` is whoever ended the membership (the member, when they left).
 */
export type ConversationBansTable = {
  conversation_id: string;
  user_id: string;
  banned_by: string;
  banned_at: number;
  rejoin_as: 'restricted' | null;
};

export type DeviceKeysTable = {
  device_id: string;
  user_id: string;
  identity_key: string;
  signing_key: string;
  signed_prekey_id: number;
  signed_prekey: string;
  signed_prekey_signature: string;
  low_notified_at: number | null;
  created_at: number;
  updated_at: number;
};

export type OneTimePrekeysTable = {
  device_id: string;
  key_id: number;
  public_key: string;
  created_at: number;
};

export type VerificationsTable = {
  user_id: string;
  target_user_id: string;
  fingerprint: string;
  method: string;
  verified_at: number;
  broken_at: number | null;
};

export type CallsTable = {
  id: string;
  caller_id: string;
  caller_device_id: string;
  callee_id: string;
  callee_device_id: string | null;
  media: string;
  state: string;
  end_reason: string | null;
  created_at: number;
  accepted_at: number | null;
  ended_at: number | null;
  /** Each side's last heartbeat of an answered call; the job ends it when either is stale. */
  caller_beat_at: number | null;
  callee_beat_at: number | null;
};

/** Kysely's own bookkeeping tables are not listed: only the Migrator touches them. */
export type DB = {
  app_meta: AppMetaTable;
  users: UsersTable;
  devices: DevicesTable;
  sessions: SessionsTable;
  refresh_tokens: RefreshTokensTable;
  contact_requests: ContactRequestsTable;
  contacts: ContactsTable;
  blocks: BlocksTable;
  user_streams: UserStreamsTable;
  user_events: UserEventsTable;
  conversations: ConversationsTable;
  conversation_members: ConversationMembersTable;
  messages: MessagesTable;
  message_hidden: MessageHiddenTable;
  message_edits: MessageEditsTable;
  reactions: ReactionsTable;
  pins: PinsTable;
  invites: InvitesTable;
  conversation_bans: ConversationBansTable;
  device_keys: DeviceKeysTable;
  one_time_prekeys: OneTimePrekeysTable;
  verifications: VerificationsTable;
  calls: CallsTable;
};

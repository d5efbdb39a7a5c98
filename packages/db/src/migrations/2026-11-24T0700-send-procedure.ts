import { MysqlAdapter, sql, type Kysely } from 'kysely';

// Frozen in time: never edit a migration that has shipped; add a new one.
//
// MySQL only: a message send's transaction as one stored procedure, so it costs one round trip
// instead of nine. On a loaded host each statement's round trip (a socket write that wakes the
// database, a read that waits for it) costs far more than the statement: with 16 senders, nine
// round trips per transaction did ~150 transactions/s where one batch did ~1 000 (bench/README.md,
// persisted sends). SQLite runs in-process and keeps the Kysely transaction in
// messages.service.ts, which this procedure mirrors statement for statement; change both together.
//
// What it does, under the conversation row's lock: the next seq, the message row, the sender's
// read position and slow-mode clock, then one `message.new` stream row per member. The streams
// are bumped through the members' primary key (conversation_id, user_id), so in user-id order,
// the order appendEvents takes those locks in; a deadlock is still retried by the caller. It answers
// (seq, user_id, last_seq) per member, read before COMMIT, for the wake-ups. Any error rolls back
// and is raised again unchanged (a duplicate client message id stays ER_DUP_ENTRY).
export async function up(db: Kysely<any>): Promise<void> {
  if (!(db.getExecutor().adapter instanceof MysqlAdapter)) return;
  // Routines outlive their tables: a database emptied by dropping its tables (the bench does)
  // still has it.
  await sql`DROP PROCEDURE IF EXISTS mvp_send_message`.execute(db);
  await sql`
    CREATE PROCEDURE mvp_send_message(
      IN p_conversation_id VARCHAR(36),
      IN p_id VARCHAR(36),
      IN p_sender_id VARCHAR(36),
      IN p_sender_device_id VARCHAR(36),
      IN p_client_message_id VARCHAR(64),
      IN p_content_type VARCHAR(64),
      IN p_ciphertext MEDIUMBLOB,
      IN p_reply_to_seq BIGINT,
      IN p_forwarded INTEGER,
      IN p_now BIGINT,
      IN p_expires_at BIGINT
    )
    BEGIN
      DECLARE v_seq BIGINT;
      DECLARE EXIT HANDLER FOR SQLEXCEPTION
      BEGIN
        ROLLBACK;
        RESIGNAL;
      END;
      START TRANSACTION;
      UPDATE conversations SET last_seq = last_seq + 1, updated_at = p_now
        WHERE id = p_conversation_id;
      SELECT last_seq INTO v_seq FROM conversations WHERE id = p_conversation_id;
      INSERT INTO messages (conversation_id, seq, id, sender_id, sender_device_id,
          client_message_id, content_type, ciphertext, reply_to_seq, forwarded, created_at,
          edited_at, deleted_at, expires_at)
        VALUES (p_conversation_id, v_seq, p_id, p_sender_id, p_sender_device_id,
          p_client_message_id, p_content_type, p_ciphertext, p_reply_to_seq, p_forwarded, p_now,
          NULL, NULL, p_expires_at);
      UPDATE conversation_members
        SET delivered_seq = v_seq, read_seq = v_seq, last_post_at = p_now
        WHERE conversation_id = p_conversation_id AND user_id = p_sender_id;
      UPDATE conversation_members m JOIN user_streams s ON s.user_id = m.user_id
        SET s.last_seq = s.last_seq + 1
        WHERE m.conversation_id = p_conversation_id;
      INSERT INTO user_events (user_id, seq, device_id, type, payload, created_at)
        SELECT s.user_id, s.last_seq, NULL, 'message.new',
            CONCAT('{"conversationId":"', p_conversation_id, '","seq":', v_seq, '}'), p_now
          FROM conversation_members m JOIN user_streams s ON s.user_id = m.user_id
          WHERE m.conversation_id = p_conversation_id;
      SELECT v_seq AS seq, s.user_id, s.last_seq
        FROM conversation_members m JOIN user_streams s ON s.user_id = m.user_id
        WHERE m.conversation_id = p_conversation_id;
      COMMIT;
    END
  `.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  if (!(db.getExecutor().adapter instanceof MysqlAdapter)) return;
  await sql`DROP PROCEDURE IF EXISTS mvp_send_message`.execute(db);
}

import { MysqlAdapter, sql, type Kysely } from 'kysely';
import * as previous from './2026-11-24T0800-send-procedure-role-check';

// Frozen in time: never edit a migration that has shipped; add a new one.
//
// MySQL only: mvp_send_message (T0800) with one more argument, `p_posted_before`: slow mode's
// slot is taken by the send's own write. The sender's row moves only if their last post is at or
// before it (or there is none); otherwise the whole send is refused with 'slow mode', and with
// 'posting context changed' as before when the membership or role changed. The slot used to be
// claimed by a statement of its own before the write, so a send that then failed (its role
// changed, a deadlock given up on, the database gone) still cost the member the whole interval.
// A send not in slow mode passes the largest safe integer. Otherwise T0800 unchanged, statement
// for statement; messages.service.ts's SQLite transaction does the same.
export async function up(db: Kysely<any>): Promise<void> {
  if (!(db.getExecutor().adapter instanceof MysqlAdapter)) return;
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
      IN p_expires_at BIGINT,
      IN p_role VARCHAR(32),
      IN p_posted_before BIGINT
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
        WHERE conversation_id = p_conversation_id AND user_id = p_sender_id AND role = p_role
          AND (last_post_at IS NULL OR last_post_at <= p_posted_before);
      IF ROW_COUNT() = 0 THEN
        IF EXISTS (SELECT 1 FROM conversation_members
            WHERE conversation_id = p_conversation_id AND user_id = p_sender_id
              AND role = p_role) THEN
          SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'slow mode';
        END IF;
        SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'posting context changed';
      END IF;
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

/** Back to T0800's procedure. */
export async function down(db: Kysely<any>): Promise<void> {
  await previous.up(db);
}

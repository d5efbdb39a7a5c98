import { randomBytes } from 'node:crypto';
import { clientWithToken, type Account } from './accounts';
import type { TestServer } from './startServer';

/** Test "ciphertext": the server stores bytes it never reads, so any bytes do. */
export const b64 = (text: string) => Buffer.from(text).toString('base64');

export const newClientMessageId = () => randomBytes(8).toString('hex');

/** Sends `text` as a message's bytes (a fresh client message id unless one is given). */
export function sendText(
  t: TestServer,
  from: Account,
  conversationId: string,
  text: string,
  clientMessageId = newClientMessageId(),
) {
  return clientWithToken(t, from.accessToken).api.messages.send.mutate({
    conversationId,
    clientMessageId,
    contentType: 'text/plain',
    ciphertext: b64(text),
  });
}

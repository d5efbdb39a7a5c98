import { createHmac } from 'node:crypto';
import { AppError, type OtpSender } from '@mvp/api';

export const SIGNATURE_HEADER = 'x-mvp-signature';
export const TIMESTAMP_HEADER = 'x-mvp-timestamp';

/** HMAC-SHA256 over `<timestamp>.<body>`, so a gateway can reject forged and replayed calls. */
export function signWebhook(secret: string, timestamp: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
}

/** Production: POSTs `{ to, code, purpose }` to an SMS gateway, signed with a shared secret. */
export function createWebhookOtpSender(url: string, secret: string): OtpSender {
  return {
    async send(message) {
      const body = JSON.stringify(message);
      const timestamp = String(Math.floor(Date.now() / 1000));
      let response: Response;
      try {
        response = await fetch(url, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            [TIMESTAMP_HEADER]: timestamp,
            [SIGNATURE_HEADER]: signWebhook(secret, timestamp, body),
          },
          body,
          // A redirect would send the number, the code and a valid signature on to wherever
          // the gateway (or whoever took its address) points: refused, as a failure.
          redirect: 'error',
          signal: AbortSignal.timeout(5_000),
        });
      } catch (cause) {
        throw new AppError('SERVICE_UNAVAILABLE', 'Could not send the code; try again', { cause });
      }
      if (!response.ok) {
        throw new AppError('SERVICE_UNAVAILABLE', 'Could not send the code; try again', {
          cause: new Error(`otp webhook answered ${response.status}`),
        });
      }
    },
  };
}

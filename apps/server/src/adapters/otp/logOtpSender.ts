import type { Logger, OtpSender } from '@mvp/api';

/**
 * Development only: the code goes to the log (one line, `msg: "otp issued"`, fields `to` and
 * `code`) so a developer can sign in without an SMS gateway. createInfrastructure refuses it when
 * NODE_ENV=production.
 */
export function createLogOtpSender(logger: Logger): OtpSender {
  return {
    async send({ to, code, purpose }) {
      logger.info({ to, code, purpose }, 'otp issued');
    },
  };
}

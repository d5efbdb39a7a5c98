export type OtpPurpose = 'register' | 'login';

/** Delivers a one-time code to a phone: a log line in development, an SMS gateway webhook in production. */
export type OtpSender = {
  send(message: { to: string; code: string; purpose: OtpPurpose }): Promise<void>;
};

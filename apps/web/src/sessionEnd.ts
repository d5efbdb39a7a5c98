/**
 * The session ended (revoked, or signed out from another device): back to the sign-in form on a
 * fresh page, with a word on why. A reload is the reset: the client's E2EE keys, device and
 * stream belong to the device that was signed out, and in this page every sign-in is a new device
 * with new keys, as at any other load. The reason survives the reload in sessionStorage only.
 */
import type { SessionEndReason } from '@mvp/sdk';
import { $, show } from './dom';

const ENDED_KEY = 'mvp.web.sessionEnded';

export function restartSignedOut(reason: SessionEndReason): void {
  show('home', false);
  show('auth', true);
  $('status').textContent = 'signed out';
  try {
    sessionStorage.setItem(ENDED_KEY, reason);
  } catch {
    // No storage: the page still resets, without saying why.
  }
  location.reload();
}

/** At load: the notice above the sign-in form, if the last page ended with its session. */
export function showSessionEndNotice(): void {
  let reason: string | null;
  try {
    reason = sessionStorage.getItem(ENDED_KEY);
    sessionStorage.removeItem(ENDED_KEY);
  } catch {
    return;
  }
  if (!reason) return;
  $('auth-notice').textContent =
    reason === 'signed_out'
      ? 'You signed out.'
      : 'You were signed out: this session ended (signed out from another device, or ' +
        'expired). Sign in again.';
  show('auth-notice', true);
}

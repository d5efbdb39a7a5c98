import type { TSyncEvent } from '@mvp/contracts';
import type { EventBus } from '../../ports';

/**
 * The bus channel of one user: wake-ups for their sync streams (`sync.events`) and ephemeral
 * events such as presence, on every instance.
 */
export const userChannel = (userId: string) => `user:${userId}`;

/**
 * An ephemeral event (never stored, never replayed) to one user's connected devices, or to one
 * of them when `toDeviceId` is given (the others' streams drop it).
 */
export async function notify(
  bus: EventBus,
  userId: string,
  event: TSyncEvent,
  toDeviceId?: string,
): Promise<void> {
  await bus.publish(userChannel(userId), toDeviceId ? { ...event, toDeviceId } : event);
}

/** What each side is told when a contact ends (removed, or the other account deleted). */
export const contactRemoved = (userId: string) => ({ type: 'contact.removed' as const, userId });

/** What both sides are told when a request is withdrawn (cancelled, or its sender deleted). */
export const requestCancelled = (requestId: string) => ({
  type: 'contact.request.cancelled' as const,
  requestId,
});

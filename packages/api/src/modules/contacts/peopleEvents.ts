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

export type BusHandler = (message: unknown) => void;
export type Unsubscribe = () => Promise<void>;

/**
 * Wake-ups and ephemeral events between instances. Durable state lives in the database; the bus
 * only says "look now". `subscribe` resolves once the subscription is live, so a caller can
 * subscribe first and then read a backlog without missing what is published in between.
 *
 * Delivery is at most once. A bus that knows it may have missed messages (its connection was
 * down) hands every local subscriber `BUS_GAP` once it is back, so each can look again.
 */
export type EventBus = {
  publish(channel: string, message: unknown): Promise<void>;
  subscribe(channel: string, handler: BusHandler): Promise<Unsubscribe>;
  close(): Promise<void>;
};

/** "Messages may have been lost here": not a wake-up anyone published, but read as one. */
export const BUS_GAP = { type: 'gap' } as const;

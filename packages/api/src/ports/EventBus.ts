export type BusHandler = (message: unknown) => void;
export type Unsubscribe = () => Promise<void>;

/**
 * Wake-ups and ephemeral events between instances. Durable state lives in the database; the bus
 * only says "look now". `subscribe` resolves once the subscription is live, so a caller can
 * subscribe first and then read a backlog without missing what is published in between.
 */
export type EventBus = {
  publish(channel: string, message: unknown): Promise<void>;
  subscribe(channel: string, handler: BusHandler): Promise<Unsubscribe>;
  close(): Promise<void>;
};

/** How far the other person in a direct conversation has got, from their receipts. */
export type Positions = { delivered: number; read: number };

/** Positions only move forward; a receipt without a read position (not shared) keeps it. */
export function advanced(
  known: Positions | undefined,
  receipt: { deliveredSeq: number; readSeq: number | null },
): Positions {
  return {
    delivered: Math.max(known?.delivered ?? 0, receipt.deliveredSeq),
    read: Math.max(known?.read ?? 0, receipt.readSeq ?? 0),
  };
}

/**
 * The mark on one of my messages: … until stored, ✓ stored, ✓✓ delivered to the other person,
 * "read" once they have read it (only if they share read receipts).
 */
export function tickOf(peer: Positions | undefined, seq: number | null): string {
  if (seq === null) return '…';
  if (peer && peer.read >= seq) return '✓✓ read';
  return peer && peer.delivered >= seq ? '✓✓' : '✓';
}

import type { Kysely, Transaction } from 'kysely';

/**
 * Opens a Kysely transaction on `db`, runs `write` in it, and holds it open (the connection
 * taken, the write not committed) until `rollBack()`, which ends it with a rollback. Resolves
 * once the write is done: what runs next meets an open transaction.
 */
export async function holdTransaction<DB>(
  db: Kysely<DB>,
  write: (trx: Transaction<DB>) => Promise<unknown>,
): Promise<{ rollBack(): Promise<void> }> {
  let release!: () => void;
  const held = new Promise<void>((resolve) => (release = resolve));
  let opened!: () => void;
  const open = new Promise<void>((resolve) => (opened = resolve));
  const ended = db.transaction().execute(async (trx) => {
    await write(trx);
    opened();
    await held;
    throw new Error('rolled back');
  });
  ended.catch(() => undefined);
  await open;
  return {
    async rollBack() {
      release();
      await ended.then(
        () => {
          throw new Error('the held transaction committed');
        },
        (err: unknown) => {
          if (!(err instanceof Error) || err.message !== 'rolled back') throw err;
        },
      );
    },
  };
}

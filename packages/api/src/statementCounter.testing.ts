import type { KyselyPlugin, RootOperationNode } from 'kysely';

/**
 * For tests of jobs that give the event loop back between batches: a Kysely plugin counting the
 * statements `match` picks, and how many of them had run when other work first got a turn (a
 * callback queued with setImmediate when the counter is made). All of them means the job held
 * the loop to its end.
 */
export function statementCounter(match: (node: RootOperationNode) => boolean) {
  const counter = {
    count: 0,
    beforeOthers: undefined as number | undefined,
    plugin: {
      transformQuery(args) {
        if (match(args.node)) counter.count += 1;
        return args.node;
      },
      transformResult: async (args) => args.result,
    } satisfies KyselyPlugin,
  };
  setImmediate(() => (counter.beforeOthers = counter.count));
  return counter;
}

import type { Compilable, CompiledQuery, Kysely, QueryResult } from 'kysely';

/** A prepared query: run it, or take it compiled with these arguments (see `syncTransaction`). */
export type Prepared<DB, Args extends unknown[], Row> = {
  (db: Kysely<DB>, ...args: Args): Promise<QueryResult<Row>>;
  compiled(db: Kysely<DB>, ...args: Args): CompiledQuery<Row>;
};

/**
 * A query of a fixed shape, built and compiled once per dialect and run with new parameters.
 * Kysely builds a tree of frozen nodes and compiles it to SQL on every call: on a hot path (a
 * call candidate, a message send) that is most of the garbage and about 25 µs per query here.
 * `build` is called once with markers in place of its arguments; each run puts the arguments
 * where the markers landed among the compiled parameters. Only for queries whose shape does not
 * depend on the arguments (no IN lists, no optional clauses).
 */
export function prepared<DB, Args extends unknown[], Row>(
  build: (db: Kysely<DB>, ...args: Args) => Compilable<Row>,
): Prepared<DB, Args, Row> {
  // By the dialect's adapter, which a database shares with its transactions: the SQL text is the
  // dialect's, and a query prepared outside a transaction serves inside one too.
  const compiledByAdapter = new WeakMap<object, { query: CompiledQuery<Row>; slots: number[] }>();
  const compiled = (db: Kysely<DB>, ...args: Args): CompiledQuery<Row> => {
    const adapter = db.getExecutor().adapter;
    let entry = compiledByAdapter.get(adapter);
    if (!entry) {
      const markers = args.map((_, i) => `\u0000prepared-argument-${i}\u0000`);
      const query = build(db, ...(markers as Args)).compile();
      const slots = query.parameters.map((p) => markers.indexOf(p as string));
      if (markers.some((m) => !query.parameters.includes(m)))
        throw new Error('prepared: every argument must be a query parameter');
      compiledByAdapter.set(adapter, (entry = { query, slots }));
    }
    const { query, slots } = entry;
    const parameters = query.parameters.map((p, i) => (slots[i]! >= 0 ? args[slots[i]!] : p));
    return { ...query, parameters };
  };
  const run = (db: Kysely<DB>, ...args: Args) => db.executeQuery(compiled(db, ...args));
  return Object.assign(run, { compiled });
}

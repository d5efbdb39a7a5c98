import type { Compilable, CompiledQuery, Kysely, QueryResult } from 'kysely';
import { embeddedOf, parametersOf, type PreparedTemplate } from './embedded';

/** A prepared query: run it, or take its template to run it yourself (see `syncTransaction`). */
export type Prepared<DB, Args extends unknown[], Row> = {
  (db: Kysely<DB>, ...args: Args): Promise<QueryResult<Row>>;
  /** `arity`: how many arguments it takes (a rest parameter's count is fixed at the first use). */
  template(db: Kysely<DB>, arity: number): PreparedTemplate<Row>;
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
  const byAdapter = new WeakMap<object, PreparedTemplate<Row>>();
  const template = (db: Kysely<DB>, arity: number): PreparedTemplate<Row> => {
    const adapter = db.getExecutor().adapter;
    let entry = byAdapter.get(adapter);
    if (!entry) {
      const markers = Array.from({ length: arity }, (_, i) => `\u0000prepared-argument-${i}\u0000`);
      const query = build(db, ...(markers as Args)).compile();
      // By map, not by searching the list: a statement built for a long list (thousands of
      // stream rows) has as many markers as parameters.
      const index = new Map(markers.map((marker, i) => [marker, i]));
      const slots = query.parameters.map((p) => index.get(p as string) ?? -1);
      if (new Set(slots).size - (slots.includes(-1) ? 1 : 0) !== arity)
        throw new Error('prepared: every argument must be a query parameter');
      byAdapter.set(adapter, (entry = { query, slots }));
    }
    return entry;
  };
  const run = async (db: Kysely<DB>, ...args: Args): Promise<QueryResult<Row>> => {
    // On the embedded database with no transaction open, at once (see syncTransaction: nothing
    // can run on the connection meanwhile), without Kysely's connection mutex and its promises.
    const handle = embeddedOf(db);
    // (The registry keeps one runner for every schema: `unknown` stands for this one's DB.)
    if (handle?.idle())
      return handle.run(query as unknown as Prepared<unknown, Args, Row>, ...args);
    const entry = template(db, args.length);
    const compiled: CompiledQuery<Row> = { ...entry.query, parameters: parametersOf(entry, args) };
    return db.executeQuery(compiled);
  };
  const query: Prepared<DB, Args, Row> = Object.assign(run, { template });
  return query;
}

/**
 * Per-request latencies (ms) kept as raw samples: a round is at most a few hundred thousand
 * requests, so a growable Float64Array and one sort is exact, cheap, and needs no histogram
 * library (autocannon's own histogram stores whole milliseconds, too coarse for sub-ms p50s).
 */
export class LatencyRecorder {
  private samples = new Float64Array(1 << 16);
  private size = 0;

  record(ms: number): void {
    if (this.size === this.samples.length) {
      const bigger = new Float64Array(this.samples.length * 2);
      bigger.set(this.samples);
      this.samples = bigger;
    }
    this.samples[this.size++] = ms;
  }

  get count(): number {
    return this.size;
  }

  /** p in [0, 100]; nearest-rank on the sorted samples. */
  percentiles(...ps: number[]): number[] {
    const sorted = this.samples.slice(0, this.size).sort();
    return ps.map((p) => {
      if (sorted.length === 0) return Number.NaN;
      const rank = Math.ceil((p / 100) * sorted.length);
      return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1] ?? Number.NaN;
    });
  }
}

/** What one measured round of one scenario produced. */
export type RoundResult = {
  requests: number;
  seconds: number;
  rps: number;
  p50Ms: number;
  p99Ms: number;
};

export function roundResult(
  requests: number,
  seconds: number,
  latencies: LatencyRecorder,
): RoundResult {
  const [p50Ms = Number.NaN, p99Ms = Number.NaN] = latencies.percentiles(50, 99);
  return { requests, seconds, rps: requests / seconds, p50Ms, p99Ms };
}

/** Median across rounds: one round disturbed by the machine does not move the figure. */
export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Rounds for printing: enough digits to compare, not float noise. */
export function rounded(value: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

/** Fails the round on the first error: an error is cheaper than an answer and would flatter. */
export function failures() {
  let first: Error | undefined;
  return {
    fail: (err: Error) => (first ??= err),
    get failed() {
      return first;
    },
  };
}

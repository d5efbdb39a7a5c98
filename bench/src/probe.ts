import WebSocket from 'ws';
import type { BaselinePayload } from './baselines';
import type { TargetEndpoints } from './targets';
import { frameText, systemInfoFrame } from './wsLoad';

/** One system.info answer over each transport, as the load generators will see it. */
export type Sample = { httpBody: string; wsFrame: string };

export async function sample(target: Pick<TargetEndpoints, 'httpUrl' | 'wsUrl'>): Promise<Sample> {
  const res = await fetch(target.httpUrl);
  const httpBody = await res.text();
  if (res.status !== 200)
    throw new Error(`GET ${target.httpUrl}: ${res.status} ${httpBody.slice(0, 300)}`);

  const socket = new WebSocket(target.wsUrl, { perMessageDeflate: false });
  const wsFrame = await new Promise<string>((resolve, reject) => {
    socket.once('error', reject);
    socket.once('open', () => socket.send(systemInfoFrame(1)));
    socket.once('message', (data) => resolve(frameText(data)));
  });
  socket.close();
  return { httpBody, wsFrame };
}

/** The raw servers answer with the MVP server's own bytes (its `result` member, for WS). */
export function baselinePayloadFrom(mvp: Sample): BaselinePayload {
  const frame = JSON.parse(mvp.wsFrame) as { id: unknown; result?: { type?: string } };
  if (frame.id !== 1 || frame.result?.type !== 'data') {
    throw new Error(
      `system.info over WebSocket did not answer with data: ${mvp.wsFrame.slice(0, 300)}`,
    );
  }
  JSON.parse(mvp.httpBody); // must be JSON, or the comparison means nothing
  return { httpBody: mvp.httpBody, wsResultJson: JSON.stringify(frame.result) };
}

/**
 * A baseline that answered smaller or differently shaped messages would make the ratio
 * meaningless, so check before measuring rather than trusting the construction.
 */
export function assertSameShape(raw: Sample, mvp: Sample): void {
  for (const key of ['httpBody', 'wsFrame'] as const) {
    if (raw[key].length !== mvp[key].length || shape(raw[key]) !== shape(mvp[key])) {
      throw new Error(`raw and MVP ${key} differ:\n  raw: ${raw[key]}\n  mvp: ${mvp[key]}`);
    }
  }
}

/** The JSON with every value blanked: keys and nesting only. */
function shape(json: string): string {
  return JSON.stringify(JSON.parse(json), (_key, value: unknown) =>
    value !== null && typeof value === 'object' ? value : typeof value,
  );
}

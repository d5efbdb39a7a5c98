/**
 * `window.__mvp`: what the browser suite (apps/server/test/browserCall.test.ts) reads from the
 * page. Only called under `__MVP_TEST_HOOKS__`, so a production bundle has neither this code nor
 * the global.
 */
import type { Call, MvpClient } from '@mvp/sdk';

/** The page's state as the tests see it, read when they ask. */
export type PageView = {
  me(): { id: string; username: string | null } | null;
  call(): Call | null;
  callStates(): string[];
  messages(): unknown[];
  /** This page stays signed in when it closes (its call's own hangup, alone). */
  keepSessionOnClose(): void;
};

declare global {
  // Declaration merging with the DOM's Window needs an interface.
  // eslint-disable-next-line @typescript-eslint/consistent-type-definitions
  interface Window {
    __mvp?: unknown;
  }
}

/** Packets received on all inbound RTP streams of the live call (0 without one). */
async function inboundPackets(call: Call | null): Promise<{ audio: number; video: number }> {
  const pc = call?.peerConnection as RTCPeerConnection | null | undefined;
  const totals = { audio: 0, video: 0 };
  if (!pc) return totals;
  (await pc.getStats()).forEach(
    (report: { type: string; kind?: string; packetsReceived?: number }) => {
      if (report.type !== 'inbound-rtp') return;
      const kind = report.kind === 'video' ? 'video' : 'audio';
      totals[kind] += report.packetsReceived ?? 0;
    },
  );
  return totals;
}

export function exposeForTests(client: MvpClient, view: PageView): void {
  window.__mvp = {
    client,
    get me() {
      return view.me();
    },
    get call() {
      const call = view.call();
      return (
        call && {
          id: call.id,
          state: call.state,
          endReason: call.endReason,
          direction: call.direction,
        }
      );
    },
    get callStates() {
      return view.callStates();
    },
    get messages() {
      return view.messages();
    },
    inboundPackets: () => inboundPackets(view.call()),
    history: () => client.calls.history({ limit: 20 }),
    keepSessionOnClose: () => view.keepSessionOnClose(),
  };
}

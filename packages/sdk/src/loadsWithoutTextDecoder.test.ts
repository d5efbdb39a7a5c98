import { afterEach, describe, expect, it, vi } from 'vitest';
import type { CallCrypto } from './calls/callCrypto';
import type { SignalPayload } from './calls/peerLink';

// Hermes before React Native 0.85 has no TextDecoder: the SDK (and @mvp/crypto inside it) must
// load and build a client there, making its decoders only when something is decoded.
describe('a runtime without TextDecoder', () => {
  afterEach(() => {
    vi.unstubAllGlobals();
    vi.resetModules();
  });

  it('imports the SDK and creates a client with end-to-end encryption on', async () => {
    vi.stubGlobal('TextDecoder', undefined);
    vi.resetModules();
    const sdk = await import('./index');
    const client = sdk.createMvpClient({ url: 'http://127.0.0.1:9', crypto: {} });
    expect(typeof client.e2ee.setup).toBe('function');
    expect(typeof sdk.createMemoryCryptoStore().getDeviceKeys).toBe('function');
  });

  it('decodes once TextDecoder is there (a polyfill installed after the import)', async () => {
    vi.stubGlobal('TextDecoder', undefined);
    vi.resetModules();
    const { seal, open } = await import('./calls/sealed');
    vi.unstubAllGlobals();
    const plain: CallCrypto = { encrypt: async (...a) => a[2], decrypt: async (...a) => a[2] };
    const payload: SignalPayload = { callId: 'c1', candidates: [] };
    const sealed = await seal(plain, 'u', 'd', payload);
    expect(await open(plain, 'u', 'd', sealed)).toEqual(payload);
  });
});

// The package must run where React Native runs: no Node built-ins, no WebAssembly, only
// crypto.getRandomValues and TextEncoder/TextDecoder from the host.
import { build } from 'esbuild';
import { webcrypto } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import vm from 'node:vm';
import { beforeAll, describe, expect, it } from 'vitest';

let code = '';

beforeAll(async () => {
  const result = await build({
    entryPoints: [fileURLToPath(new URL('../src/index.ts', import.meta.url))],
    bundle: true,
    write: false,
    platform: 'neutral',
    format: 'iife',
    globalName: 'MvpCrypto',
    conditions: ['react-native', 'browser', 'import'],
    mainFields: ['react-native', 'browser', 'module', 'main'],
    logLevel: 'silent',
  });
  code = result.outputFiles[0]!.text;
}, 60_000);

const exchange = `
  const C = MvpCrypto;
  const enc = (s) => new TextEncoder().encode(s);
  const alice = C.generateDeviceKeys();
  const bob = C.generateDeviceKeys();
  const spk = C.generateSignedPreKey(bob, 1);
  const [otk] = C.generateOneTimePreKeys(1, 1);
  let a = C.createOutboundSession(alice, C.preKeyBundle(bob, spk, otk));
  const first = C.encrypt(a, enc('hello from a bare context'));
  const inbound = C.createInboundSession(bob, { signedPreKey: spk.keyPair, oneTimePreKey: otk.keyPair }, first.message);
  const key = C.createSenderKey();
  const member = C.processSenderKeyDistribution(C.senderKeyDistribution(key));
  const group = C.groupDecrypt(member, C.groupEncrypt(key, enc('group')).message);
  new TextDecoder().decode(inbound.plaintext) + ' / ' + new TextDecoder().decode(group.plaintext);
`;

describe('bundle', () => {
  it('imports no Node built-in and no WebAssembly', () => {
    expect(code).not.toMatch(/\brequire\(/);
    expect(code).not.toMatch(/from\s*["'](node:)?(crypto|buffer|fs|path|util|stream)["']/);
    expect(code).not.toMatch(/WebAssembly/);
    expect(code).not.toMatch(/\bBuffer\./);
  });

  it('runs in a bare vm context with only getRandomValues and TextEncoder/TextDecoder', () => {
    const context = vm.createContext({
      crypto: { getRandomValues: (array: Uint8Array) => webcrypto.getRandomValues(array) },
      TextEncoder,
      TextDecoder,
    });
    vm.runInContext(code, context);
    expect(vm.runInContext(exchange, context)).toBe('hello from a bare context / group');
  });

  it('refuses to generate keys in a context without getRandomValues', () => {
    const context = vm.createContext({ TextEncoder, TextDecoder });
    vm.runInContext(code, context);
    const result: unknown = vm.runInContext(
      `try { MvpCrypto.generateDeviceKeys(); 'generated' } catch (e) { e.code }`,
      context,
    );
    expect(result).toBe('NO_SECURE_RANDOM');
  });
});

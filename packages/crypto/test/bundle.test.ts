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

/** A session and a group message; the plaintexts are shown through `show` (an expression). */
const exchange = (show = 'new TextDecoder().decode') => `
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
  ${show}(inbound.plaintext) + ' / ' + ${show}(group.plaintext);
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
    expect(vm.runInContext(exchange(), context)).toBe('hello from a bare context / group');
  });

  it('loads without TextDecoder or TextEncoder (Hermes before React Native 0.85), and encrypts', () => {
    const getRandomValues = (array: Uint8Array) => webcrypto.getRandomValues(array);
    const bare = vm.createContext({ crypto: { getRandomValues } });
    vm.runInContext(code, bare);
    expect(vm.runInContext('typeof MvpCrypto.generateDeviceKeys', bare)).toBe('function');
    // Hermes there has TextEncoder (the test's `enc` needs it), and nothing here decodes.
    const hermes = vm.createContext({ crypto: { getRandomValues }, TextEncoder });
    vm.runInContext(code, hermes);
    expect(vm.runInContext(exchange('C.toBase64'), hermes)).toBe(
      `${btoa('hello from a bare context')} / ${btoa('group')}`,
    );
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

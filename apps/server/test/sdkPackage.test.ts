import { webcrypto } from 'node:crypto';
import vm from 'node:vm';
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from './helpers/startServer';
import { backendLabel } from './helpers/env';

const run = promisify(execFile);
const root = fileURLToPath(new URL('../../..', import.meta.url));
const sdkDir = join(root, 'packages/sdk');
const tsc = join(root, 'node_modules/typescript/bin/tsc');

const consumer = `
import { createMvpClient, errorCodeOf, type RouterOutputs } from '@mvp/sdk';
import WebSocket from 'ws';

const client = createMvpClient({ url: process.argv[2]!, WebSocket });
const info: RouterOutputs['system']['info'] = await client.api.system.info.query();
const version: string = info.version;
// @ts-expect-error the router has no such procedure, and the types must say so
void client.api.system.nope;
// @ts-expect-error intervalMs is a number
void client.api.system.ticks.subscribe({ intervalMs: 'fast' }, {});
const tick = await new Promise<number>((resolve, reject) => {
  const sub = client.api.system.ticks.subscribe(
    { intervalMs: 10 },
    {
      onData: (event) => {
        sub.unsubscribe();
        resolve(event.data.seq);
      },
      onError: reject,
    },
  );
});
const code = errorCodeOf(new Error('not from the server'));
console.log(JSON.stringify({ version, installId: info.installId, tick, code: code ?? null }));
await client.close();
`;

describe(`the packed @mvp/sdk in a scratch project outside the workspace (${backendLabel})`, () => {
  let t: TestServer;
  let scratch: string;

  beforeAll(async () => {
    t = await startServer();
    const packDir = mkdtempSync(join(tmpdir(), 'mvp-pack-'));
    await run('npm', ['pack', '--pack-destination', packDir], { cwd: sdkDir });
    const tarball = join(
      packDir,
      readdirSync(packDir).find((f) => f.endsWith('.tgz'))!,
    );

    scratch = mkdtempSync(join(tmpdir(), 'mvp-consumer-'));
    writeFileSync(
      join(scratch, 'package.json'),
      JSON.stringify({
        name: 'scratch-consumer',
        private: true,
        type: 'module',
        dependencies: {
          '@mvp/sdk': `file:${tarball}`,
          ws: '^8.18',
          '@types/ws': '^8.5',
          '@types/node': '^20.19',
        },
      }),
    );
    writeFileSync(
      join(scratch, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          target: 'ES2022',
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          lib: ['ES2022', 'DOM'],
          types: ['node'],
          strict: true,
          skipLibCheck: false,
          outDir: 'out',
        },
        files: ['main.ts'],
      }),
    );
    writeFileSync(join(scratch, 'main.ts'), consumer);
    await run(
      'npm',
      ['install', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error'],
      { cwd: scratch },
    );
  }, 180_000);
  afterAll(() => t.stop());

  it('ships types without any workspace import', () => {
    const dist = join(scratch, 'node_modules/@mvp/sdk/dist');
    const typeFiles = readdirSync(dist).filter((f) => /\.d\.c?ts$/.test(f));
    expect(typeFiles.sort()).toEqual(['index.d.cts', 'index.d.ts']);
    for (const file of typeFiles) {
      expect(readFileSync(join(dist, file), 'utf8')).not.toMatch(/from ['"]@mvp\//);
    }
    const manifest = JSON.parse(
      readFileSync(join(scratch, 'node_modules/@mvp/sdk/package.json'), 'utf8'),
    ) as {
      dependencies: Record<string, string>;
    };
    // @mvp/crypto is bundled in; the @noble/* libraries under it stay real dependencies.
    expect(Object.keys(manifest.dependencies).sort()).toEqual([
      '@noble/ciphers',
      '@noble/curves',
      '@noble/hashes',
      '@trpc/client',
      '@trpc/server',
      'superjson',
    ]);
  });

  it('typechecks a consumer strictly (NodeNext, no skipLibCheck) and runs it against a live server', async () => {
    await run(process.execPath, [tsc, '-p', scratch]);
    const { stdout } = await run(process.execPath, [join(scratch, 'out/main.js'), t.server.url]);
    const info = await t.client.api.system.info.query();
    expect(JSON.parse(stdout)).toEqual({
      version: info.version,
      installId: info.installId,
      tick: 1,
      code: null,
    });
  });

  /** The installed package as a React Native / browser bundler would resolve it (neutral). */
  const bundleForReactNative = async (output: { format: 'esm' | 'iife'; globalName?: string }) => {
    const { build } = await import('esbuild');
    return build({
      entryPoints: [join(scratch, 'node_modules/@mvp/sdk/dist/index.js')],
      absWorkingDir: scratch,
      bundle: true,
      platform: 'neutral',
      ...output,
      conditions: ['react-native', 'browser', 'import'],
      mainFields: ['react-native', 'browser', 'module', 'main'],
      write: false,
      logLevel: 'silent',
    });
  };

  it('bundles for browsers and React Native with no Node built-ins', async () => {
    const result = await bundleForReactNative({ format: 'esm' });
    expect(result.errors).toEqual([]);
    expect(result.outputFiles[0]!.text).toContain('createMvpClient');
  });

  it('runs in a bare context with only getRandomValues and TextEncoder (React Native: Hermes before 0.85 has no TextDecoder)', async () => {
    const result = await bundleForReactNative({ format: 'iife', globalName: 'MvpSdk' });
    const sandbox = vm.createContext({
      crypto: { getRandomValues: (a: Uint8Array) => webcrypto.getRandomValues(a) },
      TextEncoder,
    });
    // Loads, builds a client with end-to-end encryption on, and runs the crypto store's code.
    const answer = vm.runInContext(
      `${result.outputFiles[0]!.text};
      const client = MvpSdk.createMvpClient({ url: 'http://127.0.0.1:9', crypto: {} });
      typeof client.e2ee.setup + ' ' + typeof MvpSdk.createMemoryCryptoStore().getDeviceKeys`,
      sandbox,
    ) as string;
    expect(answer).toBe('function function');
    expect(result.outputFiles[0]!.text).not.toMatch(/require\(["']node:|from ["']node:/);
  });

  it('loads from CommonJS too', async () => {
    const { stdout } = await run(
      process.execPath,
      ['-e', "process.stdout.write(typeof require('@mvp/sdk').createMvpClient)"],
      {
        cwd: scratch,
      },
    );
    expect(stdout).toBe('function');
  });
});

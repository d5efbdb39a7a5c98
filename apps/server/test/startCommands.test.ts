import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { SERVER_NODE_FLAGS } from '../src/nodeFlags';

// Every way of starting the server runs it with the same Node flags (see nodeFlags.ts).
const read = (file: string) =>
  readFileSync(fileURLToPath(new URL(`../../../${file}`, import.meta.url)), 'utf8');
const startScript = (file: string) =>
  (JSON.parse(read(file)) as { scripts: Record<string, string> }).scripts.start;

describe('start commands', () => {
  const flags = SERVER_NODE_FLAGS.join(' ');

  it('pass the server flags in both start scripts', () => {
    expect(startScript('package.json')).toMatch(
      new RegExp(`&& node ${flags} apps/server/dist/main\\.js$`),
    );
    expect(startScript('apps/server/package.json')).toBe(`node ${flags} dist/main.js`);
  });

  it("pass the server flags in the Dockerfile's CMD", () => {
    const cmd = read('Dockerfile')
      .split('\n')
      .filter((line) => line.startsWith('CMD '))
      .at(-1);
    expect(JSON.parse(cmd!.slice('CMD '.length))).toEqual([
      'node',
      ...SERVER_NODE_FLAGS,
      'apps/server/dist/main.js',
    ]);
  });

  it('are flags this Node accepts', () => {
    const run = spawnSync(process.execPath, [...SERVER_NODE_FLAGS, '-e', '0'], {
      encoding: 'utf8',
    });
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
  });
});

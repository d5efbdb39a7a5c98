import { describe, expect, it } from 'vitest';
import { lazyChild, type Logger } from './Logger';

/** A logger that records its children and every line, with the bindings in force. */
function recordingLogger(bindings: Record<string, unknown> = {}, lines: object[] = []) {
  const children: Record<string, unknown>[] = [];
  const line =
    (level: string) =>
    (first: object | string, message?: string): void => {
      lines.push({ level, bindings, first, message });
    };
  const logger: Logger = {
    debug: line('debug'),
    info: line('info'),
    warn: line('warn'),
    error: line('error'),
    child(more) {
      children.push(more);
      return recordingLogger({ ...bindings, ...more }, lines).logger;
    },
  };
  return { logger, children, lines };
}

describe('lazyChild', () => {
  it('makes the child on the first line only, once, and logs through it', () => {
    const parent = recordingLogger();
    const log = lazyChild(parent.logger, { requestId: 'r1' });
    expect(parent.children).toEqual([]);

    log.info({ event: 'x' }, 'first');
    log.error('second');
    log.child({ job: 'j' }).warn('third');

    expect(parent.children).toEqual([{ requestId: 'r1' }]);
    expect(parent.lines).toEqual([
      { level: 'info', bindings: { requestId: 'r1' }, first: { event: 'x' }, message: 'first' },
      { level: 'error', bindings: { requestId: 'r1' }, first: 'second', message: undefined },
      {
        level: 'warn',
        bindings: { requestId: 'r1', job: 'j' },
        first: 'third',
        message: undefined,
      },
    ]);
  });
});

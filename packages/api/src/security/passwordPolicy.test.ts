import { describe, expect, it } from 'vitest';
import { passwordProblem } from './passwordPolicy';

describe('passwordProblem', () => {
  it('accepts a long enough, uncommon password without composition rules', () => {
    expect(passwordProblem('correct horse battery staple')).toBeNull();
    expect(passwordProblem('alllowercaseletters')).toBeNull();
    expect(passwordProblem('x'.repeat(128))).toBeNull();
  });

  it('counts code points, not UTF-16 units', () => {
    // Seven emoji are 14 UTF-16 units but only 7 characters.
    expect(passwordProblem('🦊'.repeat(7))).toBe('too_short');
    expect(passwordProblem('🦊'.repeat(8))).toBeNull();
    // 128 emoji are 256 UTF-16 units but still within the limit.
    expect(passwordProblem('🦊'.repeat(128))).toBeNull();
    expect(passwordProblem('🦊'.repeat(129))).toBe('too_long');
  });

  it('enforces 8..128 characters at the boundaries', () => {
    expect(passwordProblem('')).toBe('too_short');
    expect(passwordProblem('Zq7#kLp')).toBe('too_short');
    expect(passwordProblem('Zq7#kLpw')).toBeNull();
    expect(passwordProblem('x'.repeat(129))).toBe('too_long');
  });

  it('rejects common passwords from the zxcvbn list, case-insensitively', () => {
    for (const p of ['password', '12345678', 'iloveyou', 'PASSWORD', 'PassWord1', 'Qwertyuiop']) {
      expect(passwordProblem(p), p).toBe('too_common');
    }
  });
});

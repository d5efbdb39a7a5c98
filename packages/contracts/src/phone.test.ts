import { describe, expect, it } from 'vitest';
import { ZPhone } from './auth';

describe('ZPhone', () => {
  it('takes mobile and landline numbers in any common notation, E.164 out', () => {
    expect(ZPhone.parse('+49 151 23456789')).toBe('+4915123456789');
    expect(ZPhone.parse('+1 (415) 555-2671')).toBe('+14155552671');
    expect(ZPhone.parse('+44 20 3012 3456')).toBe('+442030123456');
  });

  it('refuses numbers a text to would bill the sender extra (SMS pumping), and invalid ones', () => {
    for (const premium of ['+44 909 879 0000', '+1 900 200 1234', '+44 871 234 5678']) {
      const result = ZPhone.safeParse(premium);
      expect(result.success, premium).toBe(false);
      expect(result.error?.issues[0]?.message).toBe('not a number codes can be texted to');
    }
    expect(ZPhone.safeParse('+49 123').success).toBe(false);
  });
});

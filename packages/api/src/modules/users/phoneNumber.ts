import { parsePhoneNumberFromString } from 'libphonenumber-js/max';

/**
 * A phone number typed by a person, in E.164, or null when it is not a valid one. The leading '+'
 * is optional: people leave it out, and a query string turns an unescaped '+' into a space.
 */
export function phoneNumberOf(raw: string): string | null {
  const value = raw.trim();
  const phone = parsePhoneNumberFromString(value.startsWith('+') ? value : `+${value}`);
  return phone?.isValid() ? phone.number : null;
}

import { errorCodeOf } from '@mvp/sdk';

/** How a call ended: 'ok', or the typed error code it was refused with. */
export const codeOf = (p: Promise<unknown>) =>
  p.then(
    () => 'ok',
    (e: unknown) => errorCodeOf(e),
  );

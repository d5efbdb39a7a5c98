import type { TRPCClient } from '@trpc/client';
import type { AppRouter } from '@mvp/api';

/** This device's id: the device of the session the server marks as the caller's own. */
export async function sessionDeviceId(api: TRPCClient<AppRouter>): Promise<string> {
  const { sessions } = await api.sessions.list.query();
  const current = sessions.find((s) => s.current);
  if (!current) throw new Error('@mvp/sdk: the server did not name this session');
  return current.device.id;
}

import { authRouter } from './modules/auth/auth.router';
import { meRouter } from './modules/me/me.router';
import { sessionsRouter } from './modules/sessions/sessions.router';
import { systemRouter } from './modules/system/system.router';
import { router } from './trpc';

export const appRouter = router({
  system: systemRouter,
  auth: authRouter,
  me: meRouter,
  sessions: sessionsRouter,
});

export type AppRouter = typeof appRouter;

import { authRouter } from './modules/auth/auth.router';
import { blocksRouter, contactsRouter } from './modules/contacts/contacts.router';
import { meRouter } from './modules/me/me.router';
import { sessionsRouter } from './modules/sessions/sessions.router';
import { systemRouter } from './modules/system/system.router';
import { usersRouter } from './modules/users/users.router';
import { router } from './trpc';

export const appRouter = router({
  system: systemRouter,
  auth: authRouter,
  me: meRouter,
  sessions: sessionsRouter,
  users: usersRouter,
  contacts: contactsRouter,
  blocks: blocksRouter,
});

export type AppRouter = typeof appRouter;

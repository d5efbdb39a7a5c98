import { authRouter } from './modules/auth/auth.router';
import { blocksRouter, contactsRouter } from './modules/contacts/contacts.router';
import { conversationsRouter } from './modules/conversations/conversations.router';
import { callsRouter } from './modules/calls/calls.router';
import { keysRouter } from './modules/keys/keys.router';
import { meRouter } from './modules/me/me.router';
import { messagesRouter } from './modules/messages/messages.router';
import { sessionsRouter } from './modules/sessions/sessions.router';
import { syncRouter } from './modules/sync/sync.router';
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
  sync: syncRouter,
  conversations: conversationsRouter,
  messages: messagesRouter,
  keys: keysRouter,
  calls: callsRouter,
});

export type AppRouter = typeof appRouter;

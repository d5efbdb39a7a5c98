export { appRouter } from './router';
export type { AppRouter } from './router';
export { createCallerFactory } from './trpc';
export { createContext } from './context';
export type { ApiSettings, Context, ContextInput } from './context';
export { AppError } from './errors/AppError';
export type { ErrorShape } from './errors/errorFormatter';
export * from './ports';

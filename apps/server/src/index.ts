export { createServer, SERVER_VERSION } from './createServer';
export type { CreateServerOptions, MvpServer } from './createServer';
export { configFromEnv, defaultConfig } from './config';
export type { ServerConfig } from './config';
export { ENV_VARIABLES, EnvError, parseEnv } from './env';
export { createLogger, REDACT_PATHS } from './logger';
export { burstWrites } from './ws/burstWrites';

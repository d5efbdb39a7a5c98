export * from './auth';
export * from './errors';
export * from './limits';
export * from './me';
export * from './sessions';
export * from './system';
export * from './people';
export * from './messaging';

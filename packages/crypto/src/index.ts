export * from './primitives.js';

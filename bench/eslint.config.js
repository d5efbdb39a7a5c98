import base from '@mvp/eslint-config';

export default [
  ...base,
  {
    // The bench is a developer tool, not the server: its knobs come from the environment
    // (read in src/config.ts only), and the server's env.ts rule does not apply here.
    files: ['src/config.ts'],
    rules: { 'no-restricted-properties': 'off' },
  },
];

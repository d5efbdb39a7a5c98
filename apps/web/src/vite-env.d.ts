/** True on the dev server and in `vite build --mode e2e` (the browser suite); see vite.config.ts. */
declare const __MVP_TEST_HOOKS__: boolean;

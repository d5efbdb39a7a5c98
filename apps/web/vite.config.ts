import { defineConfig } from 'vite';

// `npm run dev:web` serves http://127.0.0.1:5173; the server must allow that origin
// (MVP_ALLOWED_ORIGINS=http://127.0.0.1:5173). Relative asset paths: any static server can host dist/.
export default defineConfig(({ command, mode }) => ({
  base: './',
  // The `?server=` parameter and `window.__mvp` are for development and the browser suite only
  // (the dev server, `vite build --mode e2e`). In a production bundle a link could point a
  // victim's page at an attacker's server, and any injected script could reach the client: there
  // the constant is false and the minifier drops that code.
  define: { __MVP_TEST_HOOKS__: JSON.stringify(command === 'serve' || mode === 'e2e') },
  server: { host: '127.0.0.1', port: 5173, strictPort: true },
  preview: { host: '127.0.0.1', port: 4173 },
  build: { target: 'es2022', sourcemap: true },
}));

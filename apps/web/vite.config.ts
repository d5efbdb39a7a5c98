import { defineConfig } from 'vite';

// `npm run dev:web` serves http://127.0.0.1:5173; the server must allow that origin
// (MVP_ALLOWED_ORIGINS=http://127.0.0.1:5173). Relative asset paths: any static server can host dist/.
export default defineConfig({
  base: './',
  server: { host: '127.0.0.1', port: 5173, strictPort: true },
  preview: { host: '127.0.0.1', port: 4173 },
  build: { target: 'es2022', sourcemap: true },
});

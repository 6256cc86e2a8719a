import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';
import { fileURLToPath } from 'node:url';

// Served by the gateway at /console/ from the API's origin; `npm run dev` proxies the API there.
export default defineConfig({
  base: '/console/',
  plugins: [react()],
  resolve: {
    // The role matrix is shared with the services; only that dependency-free module is bundled.
    alias: { '@ziggie/contracts/rbac': fileURLToPath(new URL('../libs/contracts/src/rbac.ts', import.meta.url)) },
  },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    assetsDir: 'assets',
    // Under a CSP without 'unsafe-inline' nothing may be inlined into the page.
    assetsInlineLimit: 0,
    sourcemap: false,
  },
  server: {
    proxy: { '/v1': process.env.ZIGGIE_GATEWAY_URL ?? 'http://127.0.0.1:4000' },
  },
});

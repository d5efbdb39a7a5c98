# syntax=docker/dockerfile:1

# Just the manifests, the lockfile and patches/ (npm ci's postinstall applies them): the npm ci
# layer (with better-sqlite3's native build) is then reused until a dependency changes instead of
# rerunning on every source edit.
FROM node:20-bookworm AS manifests
WORKDIR /src
COPY . .
RUN mkdir /manifests \
 && find . -name node_modules -prune -o \( -name package.json -o -name package-lock.json \) -print \
    | xargs -I{} cp --parents {} /manifests \
 && cp -r patches /manifests/

FROM node:20-bookworm AS build
WORKDIR /app
# If better-sqlite3's prebuilt binary cannot be fetched, node-gyp compiles against these headers
# instead of downloading them.
ENV npm_config_nodedir=/usr/local TURBO_TELEMETRY_DISABLED=1
COPY --from=manifests /manifests/ ./
RUN npm ci --no-audit --no-fund
COPY . .
RUN npx turbo run build --filter=@mvp/server...
# Workspaces hoist every dependency into the root node_modules, so pruning there keeps all that
# dist/main.js imports (and, since npm counts every workspace as production, the tooling
# workspaces' own dependencies too). The @mvp/* links go: those packages are bundled into dist.
RUN npm prune --omit=dev --no-audit --no-fund && rm -rf node_modules/@mvp

FROM node:20-bookworm-slim AS runtime
ENV NODE_ENV=production MVP_HOST=0.0.0.0 MVP_PORT=3000
WORKDIR /app
# Same layout as the build stage: Node's upward lookup from apps/server/dist reaches
# /app/node_modules, and apps/server/package.json supplies "type": "module".
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/apps/server/package.json ./apps/server/package.json
COPY --from=build /app/apps/server/dist ./apps/server/dist
# Code stays root-owned so the process cannot rewrite it; only data/ (SQLite, blobs) is writable.
RUN mkdir -p /app/data && chown node:node /app/data
USER node
EXPOSE 3000
# slim has no curl; Node 20's global fetch does the probe.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.MVP_PORT||3000)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
CMD ["node", "--no-memory-reducer", "--min-semi-space-size=16", "apps/server/dist/main.js"]

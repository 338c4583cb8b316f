# The worker and API image for docker-compose.yml (one image, two commands: node --require
# ./dist/worker/workflow-thread-preload.cjs dist/worker/main.js, node dist/api/main.js; the preload keeps workflow
# stack traces off unless WORKFLOW_STACK_TRACES=on, docs/operations.md "Tuning"). Built in two stages: `npm run
# build` compiles the TypeScript to dist/ and bundles the workflows once (dist/workflow-bundle.js, which the worker
# loads instead of running webpack at every start); the runtime stage has only the production dependencies and
# dist/.

FROM node:20-bookworm AS build
WORKDIR /app
# Dependencies first, so that code changes do not invalidate this layer.
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
# Only what the build reads: explicit paths, so a local node_modules, dist or .data never ends up in the image.
COPY tsconfig.json tsconfig.build.json ./
COPY domain ./domain
COPY contract ./contract
COPY config ./config
COPY logging ./logging
COPY tracing ./tracing
COPY workflows ./workflows
COPY activities ./activities
COPY notifications ./notifications
COPY payments ./payments
COPY store ./store
COPY migrations ./migrations
COPY worker ./worker
COPY api ./api
COPY scripts/build.ts scripts/create-admin-key.ts scripts/migrate.ts ./scripts/
RUN npm run build && npm prune --omit=dev --no-audit --no-fund

FROM node:20-bookworm-slim
# CA certificates: TLS to a Temporal cluster or Temporal Cloud verifies the server against the system roots
# unless TEMPORAL_TLS_SERVER_CA_CERT_PATH names a private CA.
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
WORKDIR /app
ENV NODE_ENV=production
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
USER node
# The first API key: docker compose run --rm api node dist/scripts/create-admin-key.js
# node directly (no npm in between to relay signals); compose adds an init as PID 1.
CMD ["node", "--require", "./dist/worker/workflow-thread-preload.cjs", "dist/worker/main.js"]

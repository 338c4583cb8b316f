# The worker and API image for docker-compose.yml (one image, two commands). TypeScript runs directly through tsx,
# so the dev dependencies are installed too (npm ci without NODE_ENV=production).
FROM node:20

WORKDIR /app
RUN chown node:node /app
USER node

# Dependencies first, so that code changes do not invalidate this layer.
COPY --chown=node:node package.json package-lock.json ./
RUN npm ci --no-audit --no-fund

# Only what the worker and API run: explicit paths, so a local node_modules or .data never ends up in the image.
COPY --chown=node:node tsconfig.json ./
COPY --chown=node:node domain ./domain
COPY --chown=node:node contract ./contract
COPY --chown=node:node logging ./logging
COPY --chown=node:node tracing ./tracing
COPY --chown=node:node workflows ./workflows
COPY --chown=node:node activities ./activities
COPY --chown=node:node notifications ./notifications
COPY --chown=node:node payments ./payments
COPY --chown=node:node store ./store
COPY --chown=node:node migrations ./migrations
COPY --chown=node:node worker ./worker
COPY --chown=node:node api ./api
# The first API key: docker compose run --rm api ./node_modules/.bin/tsx scripts/create-admin-key.ts
COPY --chown=node:node scripts/create-admin-key.ts ./scripts/create-admin-key.ts

# tsx from node_modules directly (what `npx tsx` resolves to), without npm in between to relay signals.
CMD ["./node_modules/.bin/tsx", "worker/main.ts"]

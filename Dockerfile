# syntax=docker/dockerfile:1
# claw-approvals, production image. Written and reviewed, not built in CI (no Docker engine there);
# test/deploy/dockerfile.test.ts checks what can be checked without one.
#
# Node.js 22 LTS (Node 20 reached end of life in April 2026), pinned by digest so a rebuild gets the
# same base. The digest is the multi-platform index of node:22-bookworm-slim (Node 22.23.3, Debian 12,
# built 23 Sep 2026) as docker-library/repo-info records it (repos/node/remote/22-bookworm-slim.md
# and 22.23.3-bookworm-slim.md); several public projects pin the same one. To refresh it:
#   docker buildx imagetools inspect node:22-bookworm-slim   (the "Digest:" line), or read
#   https://github.com/docker-library/repo-info/blob/master/repos/node/remote/22-bookworm-slim.md
# then replace the digest below, rebuild, and run the image's `--version` and a start to /readyz.
ARG NODE_IMAGE=node:22-bookworm-slim@sha256:43ac6c60b8f89723f746e8a92ce91abd5017e627ce1ddfe4238355d3a30b772c

# ---- build: dev dependencies and the TypeScript compiler; nothing of it ships but the output ----
FROM ${NODE_IMAGE} AS build
WORKDIR /app
# Every workspace's package.json, so npm ci sees the tree package-lock.json describes. Scripts are
# not run: `prepare` would build before the sources are here, and no dependency needs an install
# script at run time.
COPY package.json package-lock.json ./
COPY packages/client/package.json packages/client/
COPY packages/mattermost-sandbox/package.json packages/mattermost-sandbox/
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY scripts ./scripts
COPY src ./src
COPY migrations ./migrations
COPY packages/client/tsconfig.json packages/client/
COPY packages/client/src packages/client/src
# The build compiles the client package (src imports @claw-approvals/client), then src and
# migrations. Then only production dependencies stay. The sandbox (a test tool) goes, and so does
# TypeScript: prune keeps it because @mattermost/client names it as an optional peer (for its type
# declarations; nothing of it is loaded at run time).
RUN npm run build \
  && npm prune --omit=dev --ignore-scripts --no-audit --no-fund \
  && rm -rf node_modules/@claw-approvals/mattermost-sandbox \
    node_modules/typescript node_modules/.bin/tsc node_modules/.bin/tsserver \
  && find dist packages/client/dist \( -name '*.map' -o -name '*.d.ts' \) -delete

# ---- runtime: built JavaScript and production node_modules only ----
FROM ${NODE_IMAGE}
ARG NODE_IMAGE
# The version is package.json's (a test keeps the two equal); pass REVISION and CREATED when building:
#   docker build --build-arg REVISION=$(git rev-parse HEAD) --build-arg CREATED=$(date -u +%FT%TZ) .
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="claw-approvals" \
      org.opencontainers.image.description="Mattermost as the control plane for permissioned agent work: signed hash-pinned policies, two-person approvals, job-scoped tokens, verifiable proof bundles." \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.base.name="${NODE_IMAGE}"
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=8080 \
    DATA_DIR=/data \
    POLICIES_DIR=/etc/claw-approvals/policies
WORKDIR /app
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist/src ./dist/src
COPY --from=build /app/dist/migrations ./dist/migrations
# node_modules/@claw-approvals/client is npm's link to this directory: its package.json and output.
COPY --from=build /app/packages/client/package.json ./packages/client/package.json
COPY --from=build /app/packages/client/dist ./packages/client/dist
# The schemas the product validates against live with the program (/app/policies, with the
# examples for reference). POLICIES_DIR starts empty: until real policies and groups.json are
# mounted there, every channel stays closed rather than running under example policies.
COPY policies ./policies
# The server never runs a package manager, so the image ships none. DATA_DIR holds the signing key
# (mode 0600) unless one is given, the pin heads and, without DATABASE_URL, the embedded database.
RUN rm -rf /usr/local/lib/node_modules/npm /usr/local/lib/node_modules/corepack /opt/yarn-v* \
      /usr/local/bin/npm /usr/local/bin/npx /usr/local/bin/corepack /usr/local/bin/yarn /usr/local/bin/yarnpkg \
  && mkdir -p /etc/claw-approvals/policies /data \
  && chown 1000:1000 /data && chmod 0700 /data
# The base image's `node` user, by number, so Kubernetes' runAsNonRoot can verify it.
USER 1000:1000
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
  CMD ["node", "-e", "const h=process.env.HOST;const a=!h||h==='0.0.0.0'||h==='::'?'127.0.0.1':h.includes(':')?'['+h+']':h;fetch('http://'+a+':'+(process.env.PORT||8080)+'/readyz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
ENTRYPOINT ["node", "dist/src/main.js"]
CMD ["serve"]

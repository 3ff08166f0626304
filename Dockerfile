# syntax=docker/dockerfile:1
# Written and reviewed, not built in CI (no Docker engine there). Two stages: build with dev
# dependencies, run with production dependencies only, as an unprivileged user.

FROM node:20-bookworm-slim AS build
WORKDIR /app
# packages/ (the Mattermost sandbox, a test tool) and demo/ are not copied: npm ci skips the
# absent workspace, and the build (tsconfig.build.json: src and migrations) never imports them.
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY migrations ./migrations
RUN npm run build && npm prune --omit=dev

FROM node:20-bookworm-slim
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=8080 \
    DATA_DIR=/data \
    POLICIES_DIR=/etc/claw-approvals/policies
WORKDIR /app
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
# The schemas the product validates against live with the program (/app/policies, with the
# examples for reference). POLICIES_DIR starts empty: until real policies and groups.json are
# mounted there, every channel stays closed rather than running under example policies.
COPY policies ./policies
RUN mkdir -p /etc/claw-approvals/policies
# DATA_DIR holds the signing key (mode 0600) and, without DATABASE_URL, the embedded database.
RUN mkdir -p /data && chown node:node /data && chmod 0700 /data
USER node
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
  CMD ["node", "-e", "const h=process.env.HOST;const a=!h||h==='0.0.0.0'||h==='::'?'127.0.0.1':h.includes(':')?'['+h+']':h;fetch('http://'+a+':'+(process.env.PORT||8080)+'/readyz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
ENTRYPOINT ["node", "dist/src/main.js"]
CMD ["serve"]

# rasmon: one image for the collector and the agent (simulated agents in docker-compose), on Node 24 LTS.
FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json tsconfig.base.json ./
COPY protocol/package.json protocol/
COPY collector/package.json collector/
COPY agent/package.json agent/
COPY demo/package.json demo/
RUN npm ci --ignore-scripts
COPY protocol protocol
COPY collector collector
COPY agent agent
COPY demo demo
RUN npx tsc -b

FROM node:24-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
COPY protocol/package.json protocol/
COPY collector/package.json collector/
COPY agent/package.json agent/
COPY demo/package.json demo/
# The bins before npm ci, which links only the bins it finds into node_modules/.bin (the PATH below).
COPY collector/bin collector/bin
COPY agent/bin agent/bin
RUN npm ci --omit=dev --ignore-scripts && npm cache clean --force
COPY --from=build /app/protocol/dist protocol/dist
COPY --from=build /app/collector/dist collector/dist
COPY --from=build /app/agent/dist agent/dist
COPY --from=build /app/demo/dist demo/dist
COPY collector/src/engine/lua collector/src/engine/lua
COPY collector/static collector/static
ENV PATH=/app/node_modules/.bin:$PATH
USER node
EXPOSE 9420
CMD ["rasmon-collector", "--config", "/etc/rasmon/collector.yaml"]

# Berth server image. Build stage compiles TypeScript; the runtime stage carries only production
# dependencies and dist/.
FROM node:20-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: the "prepare" script would compile before src/ is copied; no dependency needs an
# install script.
RUN npm ci --ignore-scripts
COPY tsconfig.json ./
COPY src ./src
RUN npm run build

FROM node:20-slim
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY config/demo.yaml ./config/demo.yaml
# The generated signing key lives here; compose mounts a volume on it that the registry reads the
# certificate from. Created owned by node so that a fresh named volume inherits that owner.
RUN mkdir -p /var/lib/berth/keys && chown -R node:node /var/lib/berth
USER node
EXPOSE 5001
CMD ["node", "dist/cli/main.js", "serve", "--config", "/config/berth.yaml"]

# Production image of one Switchyard service (for a real deployment; tests do not use it):
#   docker build --build-arg SERVICE=api-gateway -t switchyard/api-gateway .
# The build stage does not use SERVICE, so all eight images share one cached build.
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY . .
RUN npm ci --no-audit --no-fund \
 && npm run build \
 && npm prune --omit=dev --no-audit --no-fund

FROM node:20-bookworm-slim
# tini as PID 1 forwards signals and reaps children, so `docker stop` is prompt.
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/*
ARG SERVICE
ENV NODE_ENV=production SERVICE=${SERVICE}
WORKDIR /app
COPY --from=build /app /app
RUN test -n "$SERVICE" && test -f "services/$SERVICE/dist/main.js" \
 || { echo "build with --build-arg SERVICE=<one of: $(cd services && echo *)>" >&2; exit 1; }
# docker-compose's one-shot `roles` writes Redis's ACL file into a volume mounted here; a new
# volume takes the directory's owner and contents, so user node may write it.
RUN mkdir -p /var/lib/switchyard/redis-acl \
 && touch /var/lib/switchyard/redis-acl/users.acl \
 && chown -R node:node /var/lib/switchyard
USER node
ENTRYPOINT ["tini", "--"]
CMD ["sh", "-c", "exec node \"services/$SERVICE/dist/main.js\""]

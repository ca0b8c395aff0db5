# syntax=docker/dockerfile:1
# cdc: a small runtime image with the static-ish `cdc` binary, running as a non-root user.
#   docker build -t cdc .
#   docker run --rm -v $PWD/pipeline.yaml:/etc/cdc/cdc.yaml:ro -e CDC_SOURCE__PASSWORD=... -p 9187:9187 cdc
# Configuration: /etc/cdc/cdc.yaml (mount it); secrets from the environment (CDC_SOURCE__PASSWORD,
# CDC_SINK__SASL__PASSWORD) or mounted files (`password_file:`). State: /var/lib/cdc (only the
# `file` offset store uses it; with `offsets: { type: kafka }` the container is stateless).

FROM rust:1-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends make perl pkg-config libssl-dev zlib1g-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin cdc \
 && strip target/release/cdc

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 zlib1g \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/cdc --create-home cdc
COPY --from=build /src/target/release/cdc /usr/local/bin/cdc
USER 10001:10001
WORKDIR /var/lib/cdc
# Probes reach the endpoint from outside the container's loopback.
ENV CDC_HTTP__ADDRESS=0.0.0.0:9187
EXPOSE 9187
ENTRYPOINT ["/usr/local/bin/cdc"]
CMD ["run", "-c", "/etc/cdc/cdc.yaml"]

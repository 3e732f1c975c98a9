# voxbridge: multi-stage build; small non-root runtime image.
# Everything the build stage compiles from is copied explicitly; `scripts/check_docker_build.sh`
# (run by CI) lays out exactly these paths in an empty directory and runs this stage's build
# command there, since no Docker engine is available to CI.
FROM rust:1-bookworm AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends libopus-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
# sqlx::migrate! embeds migrations/ at compile time.
COPY migrations ./migrations
RUN cargo build --release --locked --features opus --bin voxbridge && strip target/release/voxbridge

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates tzdata libopus0 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin voxbridge \
    && mkdir -p /data && chown voxbridge /data
COPY --from=build /src/target/release/voxbridge /usr/local/bin/voxbridge
USER voxbridge
WORKDIR /data
# The SQLite database (and its WAL) lives here: mount a volume, or calls are lost with the container.
VOLUME ["/data"]
ENV VOXBRIDGE_LISTEN=0.0.0.0:8080 \
    VOXBRIDGE_DATABASE_URL=sqlite:///data/voxbridge.db \
    VOXBRIDGE_LOG_FORMAT=json
EXPOSE 8080
# Alive = `GET /healthz` answers (the binary asks it: the slim image has no curl).
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 CMD ["/usr/local/bin/voxbridge", "health"]
# Exec form: the signal reaches voxbridge itself, which drains calls before exiting.
# Give it time: `docker run --stop-timeout 300` / `docker stop -t 300` (Docker's default is 10 s).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/voxbridge"]
CMD ["serve"]

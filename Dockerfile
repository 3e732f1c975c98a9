# voxbridge: multi-stage build; small non-root runtime image.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
RUN cargo build --release --locked --bin voxbridge && strip target/release/voxbridge

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates tzdata \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin voxbridge \
    && mkdir -p /data && chown voxbridge /data
COPY --from=build /src/target/release/voxbridge /usr/local/bin/voxbridge
USER voxbridge
WORKDIR /data
ENV VOXBRIDGE_LISTEN=0.0.0.0:8080 \
    VOXBRIDGE_DATABASE_URL=sqlite:///data/voxbridge.db \
    VOXBRIDGE_LOG_FORMAT=json
EXPOSE 8080
# Exec form: the signal reaches voxbridge itself, which drains calls before exiting.
ENTRYPOINT ["/usr/local/bin/voxbridge"]
CMD ["serve"]

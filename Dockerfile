# Multi-stage build: compile with the full toolchain, ship only the binary.
FROM rust:1.95-bookworm AS build
WORKDIR /src
# Dependencies first, so a source change does not rebuild them.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
    && cargo build --release --locked && rm -rf src
COPY migrations migrations
COPY src src
RUN touch src/main.rs src/lib.rs && cargo build --release --locked

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/msr --create-home msr
COPY --from=build /src/target/release/msr /usr/local/bin/msr
USER msr
WORKDIR /var/lib/msr
ENV MSR_LISTEN=0.0.0.0:8080 \
    MSR_LOG_FORMAT=json
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/msr"]
CMD ["serve"]

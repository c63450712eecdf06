# syntax=docker/dockerfile:1
#
# pgw-relay container image.
#
#   docker build -t pgw-relay:TAG .
#
# Stages:
#   chef     - Rust toolchain + cargo-chef (pinned)
#   planner  - computes recipe.json (the dependency skeleton) from the sources
#   builder  - builds the dependencies from recipe.json (cached layer that only
#              changes when Cargo.toml/Cargo.lock change), then the two binaries
#   runtime  - distroless (glibc, CA certificates, tzdata), no shell, user 65532
#
# The build and runtime images share the Debian release (bookworm / debian12),
# so the glibc the binaries link against is present at run time.
# Database migrations are embedded in the binary (`pgw-relay migrate`).
# No secret is copied into any stage: keys and URLs come from the environment
# or from mounted files at run time.

ARG RUST_IMAGE=rust:1.95-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot

FROM ${RUST_IMAGE} AS chef
ARG CARGO_CHEF_VERSION=0.1.73
RUN cargo install cargo-chef --locked --version "${CARGO_CHEF_VERSION}"
WORKDIR /build

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /build/recipe.json recipe.json
# Dependencies only: this layer is reused as long as the recipe is unchanged.
RUN cargo chef cook --release --recipe-path recipe.json
COPY . .
RUN cargo build --release --locked --bin pgw-relay --bin pgw-sim \
    && mkdir -p /out/data \
    && cp target/release/pgw-relay target/release/pgw-sim /out/

FROM ${RUNTIME_IMAGE} AS runtime
WORKDIR /app
COPY --from=builder /out/pgw-relay /out/pgw-sim /usr/local/bin/
# Configuration layers read relative to the working directory:
# config/default.toml, then config/<PGW_RELAY_ENV>.toml (mounted in Kubernetes).
COPY config/ /app/config/
# Writable directory for the embedded SQLite default (sqlite://data/pgw-relay.db)
# when the image is run without a database URL; mount a volume here to keep it.
COPY --from=builder --chown=65532:65532 /out/data /app/data
USER 65532:65532
# 8080: public (2C2P-facing /2c2p/*), 9090: internal (/healthz, /readyz, /metrics, /v1/*)
EXPOSE 8080 9090
# No curl in a distroless image: the binary asks its own internal listener's /healthz.
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/pgw-relay", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/pgw-relay"]

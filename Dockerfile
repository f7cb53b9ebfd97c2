# syntax=docker/dockerfile:1
# tokenvault: a small runtime image with a non-root user and a health check.
#   docker build -t tokenvault .
#   docker run -p 8080:8080 -v tokenvault-data:/data tokenvault serve --dev
# With podman: `podman build --format docker -t tokenvault .` (the OCI format has no HEALTHCHECK).
#
# The base images are build arguments, so a machine without access to public registries can
# build on local stand-ins (.ci/base-images makes them from Debian packages):
#   RUST_IMAGE     the build stage: cargo and rustc on PATH, a C compiler (SQLite, ring, mimalloc)
#   RUNTIME_IMAGE  the runtime stage: Debian bookworm or compatible (glibc, useradd)
# Offline builds: give `cargo vendor` output as the build context `vendor`, holding the vendored
# crates in `crates/` and a cargo `config.toml` whose `[source.vendored-sources] directory` is
# `/vendor/crates` (.ci/image does both). Without it, cargo downloads the crates as usual.
ARG RUST_IMAGE=rust:1-slim-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

# Empty unless replaced by the build context of the same name (`--build-context vendor=DIR`).
FROM scratch AS vendor

FROM ${RUST_IMAGE} AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY migrations migrations
# src/seed.rs includes fixtures/demo.json at compile time.
COPY fixtures fixtures
# Compiled dependencies stay in a cache mount between builds, so a source edit recompiles
# tokenvault alone; the binary is copied out of the mount.
RUN --mount=type=bind,from=vendor,target=/vendor \
    --mount=type=cache,id=tokenvault-cargo-registry,target=/usr/local/cargo/registry \
    --mount=type=cache,id=tokenvault-release-target,target=/src/target \
    set -e; \
    if [ -f /vendor/config.toml ]; then set -- --offline --config /vendor/config.toml; fi; \
    cargo build --release --locked "$@"; \
    cp target/release/tokenvault /usr/local/bin/tokenvault

FROM ${RUNTIME_IMAGE}
# ca-certificates for webhook deliveries over https, unless the base image has them already.
RUN if [ ! -e /etc/ssl/certs/ca-certificates.crt ]; then \
        apt-get update && apt-get install -y --no-install-recommends ca-certificates \
        && rm -rf /var/lib/apt/lists/*; \
    fi \
    && useradd --system --uid 10001 --home-dir /data --create-home tokenvault
COPY --from=build /usr/local/bin/tokenvault /usr/local/bin/tokenvault
USER tokenvault
WORKDIR /data
VOLUME /data
ENV TOKENVAULT_LISTEN=0.0.0.0:8080 \
    TOKENVAULT_DATABASE_URL=sqlite:///data/tokenvault.db
EXPOSE 8080
# `tokenvault health` asks GET /health on the TOKENVAULT_LISTEN port: exit 0 on 200, else 1.
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 CMD ["tokenvault", "health"]
ENTRYPOINT ["tokenvault"]
CMD ["serve"]

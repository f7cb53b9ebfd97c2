# tokenvault: a small runtime image with a non-root user.
#   docker build -t tokenvault .
#   docker run -p 8080:8080 -v tokenvault-data:/data tokenvault serve --dev

FROM rust:1-slim-bookworm AS build
WORKDIR /src
# Dependencies first, so source edits do not rebuild them.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
    && cargo build --release --locked \
    && rm -rf src
COPY src src
COPY migrations migrations
RUN touch src/main.rs src/lib.rs && cargo build --release --locked

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /data --create-home tokenvault
COPY --from=build /src/target/release/tokenvault /usr/local/bin/tokenvault
USER tokenvault
WORKDIR /data
ENV TOKENVAULT_LISTEN=0.0.0.0:8080 \
    TOKENVAULT_DATABASE_URL=sqlite:///data/tokenvault.db
EXPOSE 8080
ENTRYPOINT ["tokenvault"]
CMD ["serve"]

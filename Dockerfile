# taskledger: one static-ish binary on a slim Debian.
FROM rust:1-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends build-essential pkg-config zlib1g-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# No .git in the build context: the commit comes in as a build argument
# (docker build --build-arg TASKLEDGER_COMMIT=$(git rev-parse --short=12 HEAD) .).
ARG TASKLEDGER_COMMIT=unknown
ENV TASKLEDGER_COMMIT=$TASKLEDGER_COMMIT
COPY Cargo.toml Cargo.lock build.rs ./
COPY src ./src
COPY ui ./ui
RUN cargo build --release --locked --bin taskledger

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates zlib1g && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/taskledger /usr/local/bin/taskledger
WORKDIR /data
ENV TASKLEDGER_ADDR=0.0.0.0:3001 \
    TASKLEDGER_DATA_DIR=/data/storage \
    TASKLEDGER_BACKUP_DIR=/data/backups \
    TASKLEDGER_RESTORE_DIR=/data/restore
EXPOSE 3001
VOLUME ["/data/storage", "/data/backups", "/data/restore"]
ENTRYPOINT ["taskledger"]
CMD ["serve"]

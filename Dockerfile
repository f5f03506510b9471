# syntax=docker/dockerfile:1
# One image for both binaries: `poolgate` (proxy and CLI, run by the init/migration Jobs) and
# `poolgate-operator`. Build: docker build -t poolgate:dev .
ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p poolgate-proxy -p poolgate-operator \
 && mkdir -p /out \
 && cp target/release/poolgate target/release/poolgate-operator /out/

# distroless: glibc, CA certificates, no shell, no package manager; runs as uid 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/poolgate /out/poolgate-operator /usr/local/bin/
USER 65532:65532
EXPOSE 3000 8080
ENTRYPOINT []
CMD ["poolgate", "serve"]

# syntax=docker/dockerfile:1.7
#
# One image for the whole KooGallery mesh: the four service binaries, the reviewers' back office
# (koogallery-backoffice) and the `koogallery` CLI in /usr/local/bin, on a distroless runtime that runs as the non-root user 65532.
#
#   docker buildx build -t ghcr.io/koogallery/koogallery:0.1.0 .
#
# See docs/operations.md ("Build and push the image") for the multi-arch build and the push.

ARG RUST_IMAGE=rust:1-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot

FROM ${RUST_IMAGE} AS builder
WORKDIR /src
ENV CARGO_TERM_COLOR=never \
    CARGO_INCREMENTAL=0 \
    CARGO_PROFILE_RELEASE_STRIP=symbols
COPY . .
# The registry, git and target caches live in BuildKit cache mounts (not in the image), so the
# binaries are copied out to /out inside the same RUN.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    set -eux; \
    bins="koogallery-identity-check koogallery-registration koogallery-review koogallery-notification koogallery-backoffice koogallery"; \
    cargo build --release --locked $(for b in $bins; do printf -- '--bin %s ' "$b"; done); \
    mkdir -p /out; \
    for b in $bins; do install -m 0755 "target/release/$b" "/out/$b"; done

FROM ${RUNTIME_IMAGE}
LABEL org.opencontainers.image.title="koogallery" \
      org.opencontainers.image.description="KooGallery seller registration: identity-check, registration, review and notification gRPC services and the back office" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /out/ /usr/local/bin/
# distroless :nonroot already is 65532; say so explicitly for runAsNonRoot checks.
USER 65532:65532
WORKDIR /tmp
# gRPC (KG_LISTEN_ADDR) and Prometheus metrics (KG_METRICS_ADDR); the back office serves HTTP on 8080.
EXPOSE 50051 9090 8080
# The chart sets the command per container: koogallery-<service> (serve),
# koogallery-<service> migrate, koogallery health --addr <host>:50051, koogallery-backoffice.
CMD ["/usr/local/bin/koogallery", "--help"]

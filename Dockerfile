# syntax=docker/dockerfile:1
# fargate-operator container image. Build from the repository root:
#   docker build -t fargate-operator:dev .
# Checked by hack/lint-dockerfile.sh (hadolint, and the build command below must be identical to
# the one hack/release.sh runs and tests).

# --- build stage ------------------------------------------------------------------------------
# The tag's Rust version must match rust-version in Cargo.toml (hack/lint-dockerfile.sh checks it).
FROM rust:1.95-bookworm AS build
WORKDIR /src
# Only what the build reads (.dockerignore keeps everything else out of the context).
COPY Cargo.toml Cargo.lock ./
COPY src ./src
# KEEP IDENTICAL to RELEASE_BUILD in hack/release.sh: `make release` runs and tests exactly this
# command, since no Docker engine runs where the tests do. The cache mount only keeps crates.io
# downloads between builds; it is not part of the command.
RUN --mount=type=cache,target=/usr/local/cargo/registry cargo build --release --locked --bin fargate-operator

# --- runtime stage ----------------------------------------------------------------------------
# distroless cc: glibc and libgcc_s (which the Rust binary links), CA certificates in
# /etc/ssl/certs (the AWS SDK and the Kubernetes client trust them), no shell, no package manager.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/fargate-operator /fargate-operator
# 65532 is distroless's `nonroot`; numeric, so runAsNonRoot can verify it without /etc/passwd.
USER 65532:65532
# 8080: /metrics, /healthz, /readyz (--metrics-addr).
EXPOSE 8080
# No HEALTHCHECK: the image has no shell or HTTP client to run one, and Kubernetes ignores the
# instruction; the kubelet probes /healthz and /readyz (the chart's liveness and readiness probes).
# checkov:skip=CKV_DOCKER_2:distroless image without a shell or HTTP client to run a HEALTHCHECK, which Kubernetes ignores anyway; the kubelet probes /healthz and /readyz
ENTRYPOINT ["/fargate-operator"]
CMD ["run"]

# syntax=docker/dockerfile:1
#
# promgate's container image: a static binary on distroless static, as user
# 65532, with nothing to write on the root filesystem. Build it with
#   docker build --build-arg VERSION=$(git describe --tags --always) -t promgate .
# The binary is built by `make static`, the same GO_BUILD_STATIC command line
# (CGO_ENABLED=0, -trimpath, the version in -ldflags) that deploy's test builds
# and checks for being static, so the two cannot drift.

ARG GO_VERSION=1.26.8

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG VERSION=dev
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    make static VERSION="${VERSION}" STATIC_OUT=/out

# distroless static: CA certificates, tzdata and /etc/passwd, no shell and no
# package manager. The nonroot tag's user is 65532.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/promgate /usr/local/bin/promgate
COPY --from=build /out/healthcheck /usr/local/bin/healthcheck
USER 65532:65532
WORKDIR /etc/promgate
# 8443: the public TLS listener (listen). 9091: /metrics, /-/healthy and
# /-/ready (internal_listen); bind it to 0.0.0.0 only where probes and
# scrapes come from outside the container, as in Kubernetes.
EXPOSE 8443 9091
# The default internal_listen is 127.0.0.1:9091, which the probe reaches from
# inside the container.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/healthcheck", "http://127.0.0.1:9091/-/healthy"]
ENTRYPOINT ["/usr/local/bin/promgate"]
CMD ["serve", "--config=/etc/promgate/promgate.yml"]

# A minimal image of the benthos-kinesis binary: a static build on golang:1.26,
# copied onto distroless/static (CA certificates, time zones, a non-root user;
# no shell). Build it from the repository root:
#
#   docker build \
#     --build-arg VERSION="$(git describe --tags --always --dirty)" \
#     --build-arg COMMIT="$(git rev-parse --short=12 HEAD)" \
#     --build-arg DATE_BUILT="$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
#     -t benthos-kinesis .
#   docker run --rm -v "$PWD/config.yaml:/benthos.yaml:ro" benthos-kinesis
#
# (podman takes the same arguments.)

FROM golang:1.26 AS build
WORKDIR /src
# Modules first: this layer is reused while go.mod and go.sum stay the same.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG COMMIT=unknown
ARG DATE_BUILT=unknown
# Static (no cgo), no local paths, no symbol table: as make dist builds it.
RUN CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X main.version=${VERSION} -X main.commit=${COMMIT} -X main.dateBuilt=${DATE_BUILT}" \
      -o /out/benthos-kinesis ./cmd/benthos-kinesis

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/benthos-kinesis /benthos-kinesis
COPY LICENSE /LICENSE
# The Benthos HTTP server (metrics at /metrics with metrics.prometheus).
EXPOSE 4195
USER nonroot:nonroot
ENTRYPOINT ["/benthos-kinesis"]
# The config Benthos looks for first; any CLI arguments replace this.
CMD ["-c", "/benthos.yaml"]

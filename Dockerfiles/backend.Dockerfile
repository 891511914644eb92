# Image of todo-backend (REST + MCP task API, transactional outbox). Context: the repository root:
#   buildah bud -f Dockerfiles/backend.Dockerfile -t todo-backend:0.1.0 .   (or docker build …)
# The four Dockerfiles differ only in the service name, port and description (tests/deploy checks it).

# Pin for releases: --build-arg DEBIAN_IMAGE=debian:bookworm-slim@sha256:<digest>
ARG DEBIAN_IMAGE=debian:bookworm-slim

FROM ${DEBIAN_IMAGE} AS build
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      ca-certificates cmake gcc libc6-dev make pkg-config tzdata \
      libh2o-evloop-dev libssl-dev libjansson-dev libjwt-dev uuid-dev libpq-dev libical-dev \
      libcurl4-openssl-dev libyaml-dev librdkafka-dev libhiredis-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY CMakeLists.txt ./
COPY cmake/ cmake/
COPY common/ common/
COPY services/ services/
COPY --chmod=0755 Dockerfiles/collect-runtime.sh /usr/local/bin/collect-runtime
# Every service is built by one identical step, so the four images share this layer.
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBUILD_TESTING=OFF -DTODO_BUILD_SIDECAR=OFF \
 && cmake --build /build -j"$(nproc)"
RUN strip --strip-unneeded -o /todo-backend /build/bin/todo-backend \
 && collect-runtime /rootfs /todo-backend

FROM scratch
ARG VERSION=dev
ARG REVISION=unknown
ARG CREATED=1970-01-01T00:00:00Z
ARG SOURCE=
ARG LICENSES=NOASSERTION
COPY --from=build /rootfs/ /
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
USER 65532:65532
WORKDIR /home/nonroot
EXPOSE 8000
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/todo-backend"]
LABEL org.opencontainers.image.title="todo-backend" \
      org.opencontainers.image.description="Todo event system: REST and MCP task API with a transactional outbox" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="${LICENSES}"

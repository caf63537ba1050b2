# gslbd container image: a static binary on a distroless base, run as an
# unprivileged user. Build:
#   docker build -t gslbd .
# Run with a configuration mounted at /etc/gslbd/gslbd.yaml:
#   docker run -p 53:53/udp -p 53:53/tcp -p 127.0.0.1:9053:9053 \
#     -v /etc/gslbd:/etc/gslbd:ro gslbd
# The container binds port 53 as a non-root user, so the configuration's
# dns.listen needs the capability the runtime grants by default
# (NET_BIND_SERVICE) or an unprivileged port mapped to 53; http.listen must
# not be 127.0.0.1 inside a container if Prometheus scrapes it from outside.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG REVISION=unknown
RUN CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X main.version=${VERSION} -X main.revision=${REVISION}" \
      -o /out/gslbd ./cmd/gslbd \
 && /out/gslbd check-config --config configs/demo.yaml

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/gslbd /usr/local/bin/gslbd
# The demo needs no further files:
#   docker run -p 5353:5353/udp -p 9053:9053 gslbd serve --config /usr/share/gslbd/demo.yaml \
#     --dns.listen 0.0.0.0:5353 --http.listen 0.0.0.0:9053
COPY --from=build /src/configs/demo.yaml /usr/share/gslbd/demo.yaml
COPY --from=build /src/configs/demo /usr/share/gslbd/demo
# ACME records without Redis live here (instance.state_dir); mount a
# volume to keep them across container restarts.
ENV GSLBD_INSTANCE_STATE_DIR=/var/lib/gslbd
WORKDIR /var/lib/gslbd
USER nonroot:nonroot
EXPOSE 53/udp 53/tcp 9053/tcp
ENTRYPOINT ["/usr/local/bin/gslbd"]
CMD ["serve", "--config", "/etc/gslbd/gslbd.yaml"]

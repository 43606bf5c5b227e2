# syntax=docker/dockerfile:1
#
# Two images from one file:
#   docker build --target sidecar    -t appkeys-sidecar .    # Caddy with appkey_auth
#   docker build --target keyservice -t appkeys .            # appkeys serve
#
# The sidecar is built the way users build Caddy plugins: xcaddy in the
# official builder image, with this repository as the module's source.

FROM caddy:2.11-builder AS sidecar-build
ENV CADDY_VERSION=v2.11.9
COPY . /src/appkeys
# The plugin is the module's root package (plugin.go), named by module path.
RUN xcaddy build --with github.com/appkeys/appkeys=/src/appkeys --output /usr/bin/caddy \
	&& /usr/bin/caddy list-modules | grep -q '^http.handlers.appkey_auth$'

FROM caddy:2.11 AS sidecar
COPY --from=sidecar-build /usr/bin/caddy /usr/bin/caddy
COPY Caddyfile.example /etc/caddy/Caddyfile
# The official image runs: caddy run --config /etc/caddy/Caddyfile --adapter caddyfile

FROM golang:1.26-bookworm AS keyservice-build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o /out/appkeys ./cmd/appkeys

FROM gcr.io/distroless/static-debian12:nonroot AS keyservice
COPY --from=keyservice-build /out/appkeys /usr/local/bin/appkeys
VOLUME /data
EXPOSE 8700
USER nonroot
ENTRYPOINT ["/usr/local/bin/appkeys"]
CMD ["serve", "--addr", "0.0.0.0:8700", "--data", "/data"]

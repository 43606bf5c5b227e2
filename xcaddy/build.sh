#!/usr/bin/env bash
# build.sh [OUTPUT]: builds Caddy with the appkey_auth module the way users
# build Caddy plugins, with xcaddy, from this working tree. OUTPUT defaults to
# ./bin/caddy. CADDY_VERSION may be overridden; it is pinned to the Caddy
# version go.mod requires, so the plugin is built against what it was tested
# with.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-"$repo/bin/caddy"}
export CADDY_VERSION=${CADDY_VERSION:-v2.11.9}
XCADDY_VERSION=v0.4.5

xcaddy=$(command -v xcaddy || true)
if [[ -z "$xcaddy" ]] || ! "$xcaddy" version 2>/dev/null | grep -q "${XCADDY_VERSION#v}"; then
	echo "build.sh: installing xcaddy $XCADDY_VERSION" >&2
	GOBIN="$repo/bin" go install "github.com/caddyserver/xcaddy/cmd/xcaddy@$XCADDY_VERSION"
	xcaddy="$repo/bin/xcaddy"
fi

mkdir -p "$(dirname "$out")"
# The plugin is named by its module path: xcaddy replaces that module with
# this tree, and the module's root package (plugin.go) imports caddymodule.
# (Naming the caddymodule package here makes Go look for a module of that
# name, which does not exist.) GOPROXY falls through to "off" for our own
# module: a proxy that answers 403 rather than 404 for an unpublished module
# would otherwise stop go get before it takes the local replacement.
GOPROXY="${GOPROXY_FOR_XCADDY:-https://proxy.golang.org|off}" "$xcaddy" build "$CADDY_VERSION" \
	--with "github.com/appkeys/appkeys=$repo" \
	--output "$out"
"$out" list-modules | grep -qx 'http.handlers.appkey_auth' \
	|| { echo "build.sh: $out lacks http.handlers.appkey_auth" >&2; exit 1; }
echo "build.sh: built $out (Caddy $CADDY_VERSION with appkey_auth)"

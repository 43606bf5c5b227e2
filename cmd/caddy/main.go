// Command caddy is Caddy with its standard modules and the appkeys sidecar
// module (appkey_auth): the same binary `xcaddy build --with
// github.com/appkeys/appkeys/caddymodule` makes (see xcaddy/build.sh), built
// from this repository with plain `go build ./cmd/caddy`.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/appkeys/appkeys/caddymodule"
)

func main() {
	caddycmd.Main()
}

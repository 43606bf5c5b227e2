// Package appkeys is what xcaddy builds into Caddy: importing it registers
// the appkey_auth module, so the whole repository is the plugin.
//
//	xcaddy build --with github.com/appkeys/appkeys=.
//
// (xcaddy replaces the plugin's module with the local tree; the plugin must
// therefore be named by its module path, not by the caddymodule package.)
package appkeys

import _ "github.com/appkeys/appkeys/caddymodule" // registers http.handlers.appkey_auth

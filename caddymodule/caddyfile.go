package caddymodule

import (
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("appkey_auth", parseCaddyfile)
	httpcaddyfile.RegisterDirectiveOrder("appkey_auth", httpcaddyfile.Before, "reverse_proxy")
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	m := new(Handler)
	err := m.UnmarshalCaddyfile(h.Dispenser)
	return m, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	appkey_auth [<matcher>] {
//	    key_service          <url>
//	    app                  <app id>
//	    verifier_token       <token>
//	    header               <name>      # default X-API-Key; Authorization: Bearer always works
//	    cache_size           <n>         # default 100000
//	    cache_ttl            <duration>  # default 5m
//	    negative_ttl         <duration>  # default 10s
//	    stale_if_error       <duration>  # default 5m
//	    timeout              <duration>  # default 2s
//	    feed_down_revalidate <duration>  # default 30s
//	}
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the directive's name
	if d.NextArg() {
		return d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		name := d.Val()
		switch name {
		case "key_service", "app", "verifier_token", "header", "cache_size",
			"cache_ttl", "negative_ttl", "stale_if_error", "timeout", "feed_down_revalidate":
		default:
			return d.Errf("unrecognized subdirective: %s", name)
		}
		var arg string
		if !d.AllArgs(&arg) {
			return d.ArgErr()
		}
		switch name {
		case "key_service":
			h.KeyService = arg
		case "app":
			h.App = arg
		case "verifier_token":
			h.VerifierToken = arg
		case "header":
			if !validHeaderName(arg) {
				return d.Errf("header: %q is not a valid header name", arg)
			}
			h.Header = arg
		case "cache_size":
			n, err := strconv.Atoi(arg)
			if err != nil || n <= 0 {
				return d.Errf("cache_size: want a positive number, got %q", arg)
			}
			h.CacheSize = n
		case "cache_ttl", "negative_ttl", "stale_if_error", "timeout", "feed_down_revalidate":
			dur, err := caddy.ParseDuration(arg)
			if err != nil || dur <= 0 {
				return d.Errf("%s: want a positive duration, got %q", name, arg)
			}
			*map[string]*caddy.Duration{
				"cache_ttl":            &h.CacheTTL,
				"negative_ttl":         &h.NegativeTTL,
				"stale_if_error":       &h.StaleIfError,
				"timeout":              &h.Timeout,
				"feed_down_revalidate": &h.FeedDownRevalidate,
			}[name] = caddy.Duration(dur)
		}
	}
	return nil
}

// Interface guard
var _ caddyfile.Unmarshaler = (*Handler)(nil)

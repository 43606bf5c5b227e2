package caddymodule

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// The directive sorts where Caddy sorts its own authentication, basic_auth
// and forward_auth: after header, redir, rewrite and try_files, before
// request_header, handle, handle_path, route, respond, reverse_proxy,
// file_server and every other handler that answers. Ordered any later, a
// sibling handle or respond would answer first and a path would be served
// without a key.
func init() {
	httpcaddyfile.RegisterHandlerDirective("appkey_auth", parseCaddyfile)
	httpcaddyfile.RegisterDirectiveOrder("appkey_auth", httpcaddyfile.After, "forward_auth")
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
//	    ca_file              <path>      # PEM CA(s) for an https:// key_service; default: system roots
//	    tls_server_name      <name>      # name the key service's certificate must carry
//	    failed_attempts      <n>/<duration> | off  # bad keys per client address; default 20/1m
//	    max_verify_calls     <n> | off   # verify calls in flight at once; default 64
//	    trusted_networks     <cidr|private_ranges...>  # never throttled; repeatable
//	    usage_interval       <duration>  # how often request counts are reported; default 10s
//	    usage_drop_after     <duration>  # counts wait this long for an absent key service; default 5m
//	    limit_share          <n>         # divide each key's rate limit among n replicas; default 1
//	}
//
// Each setting but trusted_networks may be given once; a second line for
// it is refused rather than silently taking one of the two.
//
// failed_attempts 20/1m lets each client address send 20 bad keys at once
// and earn them back at 20 a minute; past that it gets 429 with
// Retry-After. A key not already cached as valid takes an attempt before
// it is checked, so no more than 20 are checked at once; the attempt comes
// back when the key proves good or the key service cannot answer, and a
// request abandoned before its answer keeps it.
//
// max_verify_calls 64 lets 64 verify calls be in flight at once; a request
// whose key is not cached waits for a free slot as long as it lasts, and
// gets 503 with Retry-After when it gives up first. off lifts the bound.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the directive's name
	if d.NextArg() {
		return d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var err error
		switch d.Val() {
		case "key_service":
			h.KeyService, err = oneArg(d, h.KeyService != "")
		case "app":
			h.App, err = oneArg(d, h.App != "")
		case "verifier_token":
			h.VerifierToken, err = oneArg(d, h.VerifierToken != "")
		case "ca_file":
			h.CAFile, err = oneArg(d, h.CAFile != "")
		case "tls_server_name":
			h.TLSServerName, err = oneArg(d, h.TLSServerName != "")
		case "header":
			if h.Header, err = oneArg(d, h.Header != ""); err == nil && !validHeaderName(h.Header) {
				err = d.Errf("header: %q is not a valid header name", h.Header)
			}
		case "cache_size":
			var arg string
			if arg, err = oneArg(d, h.CacheSize != 0); err == nil {
				if h.CacheSize, err = strconv.Atoi(arg); err != nil || h.CacheSize <= 0 {
					err = d.Errf("cache_size: want a positive number, got %q", arg)
				}
			}
		case "cache_ttl":
			err = durationArg(d, &h.CacheTTL)
		case "negative_ttl":
			err = durationArg(d, &h.NegativeTTL)
		case "stale_if_error":
			err = durationArg(d, &h.StaleIfError)
		case "timeout":
			err = durationArg(d, &h.Timeout)
		case "feed_down_revalidate":
			err = durationArg(d, &h.FeedDownRevalidate)
		case "failed_attempts":
			var arg string
			if arg, err = oneArg(d, h.FailedAttempts != nil); err == nil {
				if h.FailedAttempts, err = parseFailedAttempts(arg); err != nil {
					err = d.Errf("failed_attempts: %v", err)
				}
			}
		case "usage_interval":
			err = durationArg(d, &h.UsageInterval)
		case "usage_drop_after":
			err = durationArg(d, &h.UsageDropAfter)
		case "max_verify_calls":
			var arg string
			if arg, err = oneArg(d, h.MaxVerifyCalls != 0); err == nil {
				h.MaxVerifyCalls, err = parseMaxVerifyCalls(arg)
				if err != nil {
					err = d.Errf("max_verify_calls: %v", err)
				}
			}
		case "limit_share":
			var arg string
			if arg, err = oneArg(d, h.LimitShare != 0); err == nil {
				if h.LimitShare, err = strconv.Atoi(arg); err != nil || h.LimitShare < 1 || h.LimitShare > maxLimitShare {
					err = d.Errf("limit_share: want a number of replicas from 1 to %d, got %q", maxLimitShare, arg)
				}
			}
		case "trusted_networks": // repeatable: each line adds
			if !d.NextArg() {
				return d.ArgErr()
			}
			for ok := true; ok; ok = d.NextArg() {
				if d.Val() == "private_ranges" {
					h.TrustedNetworks = append(h.TrustedNetworks, caddyhttp.PrivateRangesCIDR()...)
					continue
				}
				if _, err := caddyhttp.CIDRExpressionToPrefix(d.Val()); err != nil {
					return d.Errf("trusted_networks: %v", err)
				}
				h.TrustedNetworks = append(h.TrustedNetworks, d.Val())
			}
		default:
			return d.Errf("unrecognized subdirective: %s", d.Val())
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// oneArg reads the single argument of the subdirective at hand, refusing
// it when set says an earlier line already gave it.
func oneArg(d *caddyfile.Dispenser, set bool) (string, error) {
	if set {
		return "", d.Errf("%s: given twice", d.Val())
	}
	var arg string
	if !d.AllArgs(&arg) {
		return "", d.ArgErr()
	}
	return arg, nil
}

// durationArg reads the subdirective's one positive duration into *dst.
func durationArg(d *caddyfile.Dispenser, dst *caddy.Duration) error {
	name := d.Val()
	arg, err := oneArg(d, *dst != 0)
	if err != nil {
		return err
	}
	dur, err := caddy.ParseDuration(arg)
	if err != nil || dur <= 0 {
		return d.Errf("%s: want a positive duration, got %q", name, arg)
	}
	*dst = caddy.Duration(dur)
	return nil
}

// parseFailedAttempts reads `off` or `<limit>/<window>`, such as `20/1m`.
func parseFailedAttempts(s string) (*FailedAttempts, error) {
	if s == "off" {
		return &FailedAttempts{Off: true}, nil
	}
	n, w, ok := strings.Cut(s, "/")
	limit, err := strconv.Atoi(n)
	if !ok || err != nil || limit <= 0 {
		return nil, errFailedAttempts(s)
	}
	window, err := caddy.ParseDuration(w)
	if err != nil || window <= 0 || window > 24*time.Hour {
		return nil, errFailedAttempts(s)
	}
	return &FailedAttempts{Limit: limit, Window: caddy.Duration(window)}, nil
}

// parseMaxVerifyCalls reads a positive count up to MaxMaxVerifyCalls, or
// `off` (-1, no bound).
func parseMaxVerifyCalls(s string) (int, error) {
	if s == "off" {
		return -1, nil
	}
	n, err := strconv.Atoi(s)
	switch {
	case err != nil && errors.Is(err, strconv.ErrRange), err == nil && n > MaxMaxVerifyCalls:
		return 0, fmt.Errorf("at most %d, got %q", MaxMaxVerifyCalls, s)
	case err != nil || n <= 0:
		return 0, fmt.Errorf("want a positive number or off, got %q", s)
	}
	return n, nil
}

type errFailedAttempts string

func (e errFailedAttempts) Error() string {
	return "want off or <limit>/<window> such as 20/1m, got " + strconv.Quote(string(e))
}

// Interface guard
var _ caddyfile.Unmarshaler = (*Handler)(nil)

package webhook

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// Policy says which addresses deliveries may connect to. By default only
// public unicast addresses: no loopback, private, link-local (the cloud
// metadata service at 169.254.169.254), shared (CGNAT), unspecified,
// multicast or reserved ones. AllowPrivate lets the prefixes it lists
// through (--webhooks-allow-private, for receivers on premises; tests
// allow 127.0.0.1/32 alone).
type Policy struct {
	AllowPrivate []netip.Prefix
}

// ParsePrefixes reads a comma-separated list of CIDR prefixes or single
// addresses, such as "10.0.0.0/8,127.0.0.1".
func ParsePrefixes(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if !strings.Contains(f, "/") {
			a, err := netip.ParseAddr(f)
			if err != nil {
				return nil, fmt.Errorf("%q is not an address or CIDR prefix", f)
			}
			out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, fmt.Errorf("%q is not an address or CIDR prefix", f)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// ErrRefusedAddress is a connection the policy refused.
var ErrRefusedAddress = errors.New("webhook address refused")

// notPublic are the ranges no delivery goes to by default, beyond what
// netip classifies (loopback, private, link-local, multicast, unspecified).
var notPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"), // shared address space (CGNAT)
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("192.0.2.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("203.0.113.0/24"),
	netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("64:ff9b::/96"), // NAT64 maps IPv4 inside
	netip.MustParsePrefix("64:ff9b:1::/48"),
	netip.MustParsePrefix("2001:db8::/32"),
	netip.MustParsePrefix("2002::/16"), // 6to4 embeds an IPv4 address
	netip.MustParsePrefix("100::/64"),
}

// Allowed reports whether a delivery may connect to a.
func (p Policy) Allowed(a netip.Addr) bool {
	a = a.Unmap()
	for _, pre := range p.AllowPrivate {
		if pre.Contains(a) {
			return true
		}
	}
	if !a.IsValid() || a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() ||
		a.IsInterfaceLocalMulticast() || a.IsMulticast() || a.IsUnspecified() || !a.IsGlobalUnicast() {
		return false
	}
	for _, pre := range notPublic {
		if pre.Contains(a) {
			return false
		}
	}
	return true
}

// control runs after the name was resolved and before each connect, on
// the very address dialled: a name that resolves to a private address,
// or changes its answer between a check and the connect, is refused too.
func (p Policy) control(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: %s", ErrRefusedAddress, address)
	}
	if !p.Allowed(ap.Addr()) {
		return fmt.Errorf("%w: %s is not a public address", ErrRefusedAddress, ap.Addr())
	}
	return nil
}

// MaxResponseBody bounds what is read of a receiver's answer: only its
// status matters.
const MaxResponseBody = 64 << 10

// Timeout bounds one attempt, from connect to the answer's headers.
const Timeout = 10 * time.Second

// NewClient returns the HTTP client deliveries use: it dials through the
// policy, follows no redirect (a 3xx is a failed attempt, so a receiver
// cannot point a delivery at an address it could not name), uses no proxy
// from the environment and gives up on an attempt after timeout.
func NewClient(p Policy, timeout time.Duration) *http.Client {
	d := &net.Dialer{Timeout: timeout, Control: p.control}
	tr := &http.Transport{
		Proxy:                  nil,
		DialContext:            d.DialContext,
		TLSHandshakeTimeout:    timeout,
		ResponseHeaderTimeout:  timeout,
		MaxIdleConnsPerHost:    4,
		IdleConnTimeout:        90 * time.Second,
		MaxResponseHeaderBytes: 64 << 10,
	}
	return &http.Client{
		Transport:     tr,
		Timeout:       timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// CheckURL says whether raw may name an endpoint: an absolute http or
// https URL with a host, no user info and no fragment, of at most 2,048
// bytes. Where it may connect is decided at connect time, not here.
func CheckURL(raw string) error {
	if len(raw) > 2048 {
		return errors.New("url must be at most 2048 bytes")
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Hostname() == "" {
		return errors.New("url must be an absolute http:// or https:// URL")
	}
	if u.User != nil {
		return errors.New("url must not hold a user name or password")
	}
	if u.Fragment != "" {
		return errors.New("url must not have a fragment")
	}
	return nil
}

// LiteralRefused is for the API: it refuses at once a URL whose host is a
// literal address the policy refuses, so its owner hears of it when
// registering it rather than from a failed delivery.
func (p Policy) LiteralRefused(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil {
		return false
	}
	a, err := netip.ParseAddr(u.Hostname())
	return err == nil && !p.Allowed(a)
}

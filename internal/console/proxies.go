package console

import (
	"fmt"
	"net/netip"
	"strings"
)

// privateRanges are the addresses `private_ranges` stands for, as in
// Caddy's trusted_proxies: the private IPv4 networks, loopback, IPv6
// unique local addresses and ::1.
var privateRanges = []string{"192.168.0.0/16", "172.16.0.0/12", "10.0.0.0/8", "127.0.0.1/8", "fd00::/8", "::1/128"}

// ParseTrustedProxies reads --trusted-proxies: CIDRs (10.0.0.0/8), single
// addresses (10.1.2.3) and the shorthand private_ranges.
func ParseTrustedProxies(values []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, v := range values {
		v = strings.TrimSpace(v)
		switch {
		case v == "":
			continue
		case v == "private_ranges":
			for _, r := range privateRanges {
				out = append(out, netip.MustParsePrefix(r).Masked())
			}
			continue
		case strings.Contains(v, "/"):
			p, err := netip.ParsePrefix(v)
			if err != nil {
				return nil, fmt.Errorf("invalid trusted proxy %q: use a CIDR such as 10.0.0.0/8, an address, or private_ranges", v)
			}
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(v)
		if err != nil {
			return nil, fmt.Errorf("invalid trusted proxy %q: use a CIDR such as 10.0.0.0/8, an address, or private_ranges", v)
		}
		a = a.Unmap().WithZone("")
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

package verify

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"strings"
	"testing"

	"github.com/appkeys/appkeys/internal/verify/verifytest"
)

// TestClientTLSCustomCA: a key service behind a certificate of a private CA
// is reached with that CA, and refused, with a clear error, with another.
func TestClientTLSCustomCA(t *testing.T) {
	ca := verifytest.NewCA(t, "appkeys test CA")
	srv := verifytest.NewUnstarted(t)
	srv.StartTLSWith(t, ca)
	key := srv.AddKey(t, "key_tls", testApp)

	verifyWith := func(cfg *tls.Config) (Result, error) {
		t.Helper()
		c, err := NewClient(ClientConfig{BaseURL: srv.URL, Token: srv.Token, TLS: cfg})
		if err != nil {
			t.Fatal(err)
		}
		defer c.CloseIdleConnections()
		return c.Verify(context.Background(), key)
	}
	if r, err := verifyWith(&tls.Config{RootCAs: ca.Pool()}); err != nil || !r.Valid || r.KeyID != "key_tls" {
		t.Fatalf("right CA: %+v, %v", r, err)
	}
	for name, cfg := range map[string]*tls.Config{
		"wrong CA":   {RootCAs: verifytest.NewCA(t, "someone else").Pool()},
		"system CAs": nil,
	} {
		_, err := verifyWith(cfg)
		var ua x509.UnknownAuthorityError
		if !errors.As(err, &ua) || !strings.Contains(err.Error(), "certificate signed by unknown authority") {
			t.Fatalf("%s: %v; want certificate verification to fail", name, err)
		}
		if srv.VerifyCalls.Load() != 1 {
			t.Fatalf("%s: the key reached a server whose certificate did not verify", name)
		}
	}
}

// TestClientTLSServerName: a certificate made for a name, not the address
// dialled, verifies when the client is told that name.
func TestClientTLSServerName(t *testing.T) {
	ca := verifytest.NewCA(t, "appkeys test CA")
	srv := verifytest.NewUnstarted(t)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{ca.Issue(t, "keys.internal")}}
	srv.StartTLS()
	key := srv.AddKey(t, "key_tls", testApp)
	for _, tc := range []struct {
		name string
		ok   bool
	}{{"", false}, {"keys.internal", true}, {"other.internal", false}} {
		c, err := NewClient(ClientConfig{BaseURL: srv.URL, Token: srv.Token, TLS: &tls.Config{RootCAs: ca.Pool(), ServerName: tc.name}})
		if err != nil {
			t.Fatal(err)
		}
		r, err := c.Verify(context.Background(), key)
		c.CloseIdleConnections()
		var he x509.HostnameError
		if tc.ok && (err != nil || !r.Valid) || !tc.ok && !errors.As(err, &he) {
			t.Fatalf("server name %q: %+v, %v", tc.name, r, err)
		}
	}
}

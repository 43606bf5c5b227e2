package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// TestServeOIDCFlags: the sign-in flags refuse, before anything starts,
// what would lock everyone out or let strangers in.
func TestServeOIDCFlags(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(secret, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	base := []string{"--oidc-issuer", "https://idp.example.com", "--oidc-client-id", "appkeys", "--oidc-client-secret-file", secret}
	for _, tt := range []struct {
		args    []string
		wantErr string
	}{
		{args: nil},
		{args: base},
		{args: append(base, "--console-token-login=false", "--oidc-name", "Okta")},
		{args: append(base, "--oidc-auto-create", "member", "--oidc-org", "org_1")},
		{args: []string{"--console-token-login=false"}, wantErr: "nobody could log in"},
		{args: []string{"--oidc-client-id", "x"}, wantErr: "need --oidc-issuer"},
		{args: []string{"--oidc-issuer", "idp.example.com", "--oidc-client-id", "a", "--oidc-client-secret-file", secret}, wantErr: "--oidc-issuer"},
		{args: []string{"--oidc-issuer", "https://idp.example.com", "--oidc-client-id", "a"}, wantErr: "--oidc-client-secret-file"},
		{args: []string{"--oidc-issuer", "https://idp.example.com", "--oidc-client-id", "a", "--oidc-client-secret-file", empty}, wantErr: "is empty"},
		{args: append(base, "--oidc-auto-create", "owner", "--oidc-org", "org_1"), wantErr: "only member"},
		{args: append(base, "--oidc-auto-create", "member"), wantErr: "needs --oidc-org"},
		{args: append(base, "--oidc-org", "acme"), wantErr: "--oidc-org"},
	} {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var f serveFlags
			cmd := &cobra.Command{}
			f.register(cmd, "127.0.0.1:0")
			f.registerServe(cmd)
			if err := cmd.Flags().Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			_, err := f.config(os.Stderr)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want one with %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("the error shows the client secret")
			}
		})
	}
}

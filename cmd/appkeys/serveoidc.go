package main

import (
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/appkeys/appkeys/internal/console"
)

// oidcFlags are serve's sign-in flags: OpenID Connect, and whether a user
// token may still be pasted into the console.
type oidcFlags struct {
	issuer, clientID, secretFile, name, autoCreate, org string
	tokenLogin                                          bool
	// registered is false for `up`, which has none of these flags.
	registered bool
}

func (f *oidcFlags) register(cmd *cobra.Command) {
	f.registered = true
	fl := cmd.Flags()
	fl.StringVar(&f.issuer, "oidc-issuer", "", "OpenID Connect issuer URL: the console offers \"Sign in with …\" (needs --oidc-client-id and --oidc-client-secret-file)")
	fl.StringVar(&f.clientID, "oidc-client-id", "", "the console's client id at the OpenID Connect provider")
	fl.StringVar(&f.secretFile, "oidc-client-secret-file", "", "file holding the console's client secret at the provider (kept out of the command line and the environment)")
	fl.StringVar(&f.name, "oidc-name", "", "the provider's name on the login page: \"Sign in with NAME\" (default: the issuer's host)")
	fl.StringVar(&f.autoCreate, "oidc-auto-create", "", "member: add a verified email nobody has yet as a member of --oidc-org at its first sign-in; empty refuses it")
	fl.StringVar(&f.org, "oidc-org", "", "the organization (org_…) whose users sign in with the provider, and where --oidc-auto-create adds them; empty looks in every organization")
	fl.BoolVar(&f.tokenLogin, "console-token-login", true, "let users log in to the console by pasting a user token; false leaves only the OpenID Connect sign-in")
}

// options are the console's sign-in options; nil OIDC without --oidc-issuer.
func (f *oidcFlags) options() (*console.OIDC, bool, error) {
	if !f.registered {
		return nil, true, nil
	}
	if f.issuer == "" {
		if f.clientID != "" || f.secretFile != "" || f.autoCreate != "" || f.org != "" || f.name != "" {
			return nil, false, fmt.Errorf("the --oidc-… flags need --oidc-issuer")
		}
		if !f.tokenLogin {
			return nil, false, fmt.Errorf("--console-token-login=false needs --oidc-issuer: otherwise nobody could log in to the console")
		}
		return nil, true, nil
	}
	u, err := url.Parse(f.issuer)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, false, fmt.Errorf("invalid --oidc-issuer %q: use the provider's issuer URL, such as https://accounts.example.com", f.issuer)
	}
	if f.clientID == "" || f.secretFile == "" {
		return nil, false, fmt.Errorf("--oidc-issuer needs --oidc-client-id and --oidc-client-secret-file")
	}
	raw, err := os.ReadFile(f.secretFile)
	if err != nil {
		return nil, false, fmt.Errorf("read --oidc-client-secret-file: %w", err)
	}
	secret := strings.TrimSpace(string(raw))
	if secret == "" {
		return nil, false, fmt.Errorf("--oidc-client-secret-file %s is empty", f.secretFile)
	}
	switch f.autoCreate {
	case "":
	case "member":
		if f.org == "" {
			return nil, false, fmt.Errorf("--oidc-auto-create member needs --oidc-org: the organization the new members join")
		}
	default:
		return nil, false, fmt.Errorf("invalid --oidc-auto-create %q: only member may be created by signing in", f.autoCreate)
	}
	if f.org != "" && !strings.HasPrefix(f.org, "org_") {
		return nil, false, fmt.Errorf("invalid --oidc-org %q: use an organization id (org_…)", f.org)
	}
	name := f.name
	if name == "" {
		name = u.Host
	}
	return &console.OIDC{Issuer: f.issuer, ClientID: f.clientID, ClientSecret: secret, Name: name, AutoCreate: f.autoCreate, OrgID: f.org}, f.tokenLogin, nil
}

package keyservice

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/appkeys/appkeys/internal/store"
)

// A random part as the service mints it: 43 base62 characters.
const goodRandom = "7dQm2ZkR9vXc4LpT1sWb8NfJ3hYg6AeU0oKiVtqMxCz"

// TestSuppliedTokenShape: a token an operator supplies (APPKEYS_ADMIN_TOKEN,
// APPKEYS_BOOTSTRAP_TOKEN) must look like one the service mints, and not
// like a placeholder or a pattern: those are accepted as real credentials
// by anyone who reads the same example.
func TestSuppliedTokenShape(t *testing.T) {
	cases := []struct {
		name  string
		kind  TokenKind
		token string
		ok    bool
	}{
		{"minted admin shape", AdminToken, "aka_" + goodRandom, true},
		{"minted owner shape", OwnerToken, "aku_" + goodRandom, true},
		{"longer is fine", OwnerToken, "aku_" + goodRandom + goodRandom, true},
		{"the k8s admin placeholder", AdminToken, "aka_REPLACE_WITH_RANDOM_CHARACTERS", false},
		{"the k8s owner placeholder", OwnerToken, "aku_REPLACE_WITH_RANDOM_CHARACTERS", false},
		{"a placeholder of the right shape", OwnerToken, "aku_REPLACEME" + goodRandom[:34], false},
		{"replace in lower case", OwnerToken, "aku_replaceme" + goodRandom[:34], false},
		{"zeros", OwnerToken, "aku_" + strings.Repeat("0", 43), false},
		{"one letter", AdminToken, "aka_" + strings.Repeat("a", 60), false},
		{"two letters", AdminToken, "aka_" + strings.Repeat("ab", 30), false},
		{"digits over and over", OwnerToken, "aku_" + strings.Repeat("0123456789", 5), false},
		{"too short", OwnerToken, "aku_" + goodRandom[:42], false},
		{"the old minimum of 24", OwnerToken, "aku_" + goodRandom[:20], false},
		{"too long to authenticate", OwnerToken, "aku_" + strings.Repeat(goodRandom, 5), false},
		{"not base62", OwnerToken, "aku_" + goodRandom[:40] + "-_+", false},
		{"a space", OwnerToken, "aku_" + goodRandom[:21] + " " + goodRandom[21:], false},
		{"wrong prefix", OwnerToken, "aka_" + goodRandom, false},
		{"no prefix", AdminToken, goodRandom + "abcd", false},
		{"a verifier token", AdminToken, "akv_" + goodRandom, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.kind.Check(c.token)
			if (err == nil) != c.ok {
				t.Fatalf("Check(%q) = %v; want ok %v", c.token, err, c.ok)
			}
			if err != nil && strings.Contains(err.Error(), c.token) {
				t.Fatalf("the error repeats the token: %v", err)
			}
		})
	}
}

// Tokens the service mints pass its own check.
func TestNewTokenPassesCheck(t *testing.T) {
	for _, kind := range []TokenKind{AdminToken, OwnerToken} {
		seen := map[string]bool{}
		for range 200 {
			tok := kind.New()
			if err := kind.Check(tok); err != nil {
				t.Fatalf("minted %s token refused: %v", kind, err)
			}
			if seen[tok] {
				t.Fatal("the same token twice")
			}
			seen[tok] = true
		}
	}
}

// Bootstrap refuses a guessable token before writing anything.
func TestBootstrapRefusesGuessableTokens(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "appkeys.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	svc, err := New(Config{Store: st, MasterKey: make([]byte, MasterKeyLen)})
	if err != nil {
		t.Fatal(err)
	}
	persist := func(string, string) error { t.Fatal("tokens persisted"); return nil }
	for _, tc := range []struct{ admin, owner string }{
		{"aka_REPLACE_WITH_RANDOM_CHARACTERS", ""},
		{"", "aku_REPLACE_WITH_RANDOM_CHARACTERS"},
		{"", "aku_" + strings.Repeat("0", 43)},
	} {
		if _, _, created, err := svc.Bootstrap(ctx, tc.admin, tc.owner, persist); err == nil || created {
			t.Fatalf("Bootstrap(%q, %q) = %v, %v; want refused", tc.admin, tc.owner, created, err)
		}
	}
	if empty, err := st.IsEmpty(ctx); err != nil || !empty {
		t.Fatalf("store empty after refusals: %v, %v", empty, err)
	}
}

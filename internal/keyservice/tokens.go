package keyservice

import (
	"errors"
	"fmt"
	"strings"

	"github.com/appkeys/appkeys/internal/apikey"
)

// TokenKind is a kind of bearer token an operator may supply instead of
// letting the service mint it: the platform admin's (APPKEYS_ADMIN_TOKEN)
// or the first owner's (APPKEYS_BOOTSTRAP_TOKEN).
type TokenKind struct {
	name, prefix string
}

// The kinds of token an operator may supply.
var (
	AdminToken = TokenKind{"admin", adminTokenPrefix}
	OwnerToken = TokenKind{"owner", userTokenPrefix}
)

// Bounds on a supplied token's random part: at least what the service
// mints (256 bits of base62), at most what Authenticate reads.
const (
	minSuppliedRandom = tokenRandomLen
	maxSuppliedRandom = maxTokenLen - 4
	// minDistinct is the fewest different characters a supplied token's
	// random part may use. 43 random base62 characters use 31 on average;
	// fewer than 16 happens with odds below 1 in 10^12, while "000…",
	// "abab…" and "0123456789" over and over all fall under it.
	minDistinct = 16
)

func (k TokenKind) String() string { return k.name }

// New mints a token of this kind, as the service does for itself.
func (k TokenKind) New() string {
	for {
		tok := newToken(k.prefix)
		// A random token fails Check with odds below 1 in 10^8 (it spells
		// "replace"); never hand one out that the service would refuse.
		if k.Check(tok) == nil {
			return tok
		}
	}
}

// Check reports whether a supplied token has the shape the service mints
// (the prefix, then 43 or more base62 characters) and is no placeholder or
// pattern: such a token is a credential anyone who read the same example
// holds. The error says what is wrong and never repeats the token.
func (k TokenKind) Check(token string) error {
	random, ok := strings.CutPrefix(token, k.prefix)
	switch {
	case !ok:
		return fmt.Errorf("must start with %s", k.prefix)
	case strings.Contains(strings.ToUpper(random), "REPLACE"):
		return errors.New("is a placeholder (it contains REPLACE)")
	case len(random) < minSuppliedRandom || len(random) > maxSuppliedRandom:
		return fmt.Errorf("must be %s followed by %d to %d random base62 characters (A-Z, a-z, 0-9); this one has %d", k.prefix, minSuppliedRandom, maxSuppliedRandom, len(random))
	case !apikey.IsBase62(random):
		return fmt.Errorf("must be %s followed by base62 characters only (A-Z, a-z, 0-9)", k.prefix)
	case distinct(random) < minDistinct:
		return errors.New("is not random: it repeats a few characters")
	}
	return nil
}

func distinct(s string) int {
	var seen [256]bool
	n := 0
	for i := 0; i < len(s); i++ {
		if !seen[s[i]] {
			seen[s[i]] = true
			n++
		}
	}
	return n
}

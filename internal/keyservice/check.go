package keyservice

import (
	"net/mail"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits on what callers send.
const (
	MaxNameLen        = 100
	MaxEmailLen       = 254
	MaxSecretValueLen = 64 << 10
)

func checkName(what, name string) (string, error) {
	name = strings.TrimSpace(name)
	switch {
	case name == "":
		return "", errorf(KindInvalid, "%s is required", what)
	case !utf8.ValidString(name):
		return "", errorf(KindInvalid, "%s must be valid UTF-8", what)
	case utf8.RuneCountInString(name) > MaxNameLen:
		return "", errorf(KindInvalid, "%s must be at most %d characters", what, MaxNameLen)
	case strings.ContainsFunc(name, unicode.IsControl):
		return "", errorf(KindInvalid, "%s must not contain control characters", what)
	}
	return name, nil
}

func checkEmail(email string) (string, error) {
	email = strings.TrimSpace(email)
	if email == "" {
		return "", errorf(KindInvalid, "email is required")
	}
	addr, err := mail.ParseAddress(email)
	if err != nil || addr.Address != email || len(email) > MaxEmailLen {
		return "", errorf(KindInvalid, "email %q is not a valid address", truncate(email, 64))
	}
	return strings.ToLower(email), nil
}

// truncate cuts s to at most n bytes, at a character boundary, and marks
// the cut with "…". A cut inside a character would put invalid UTF-8 into
// an error message.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

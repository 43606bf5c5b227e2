package keyservice

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/appkeys/appkeys/internal/store"
)

// A sign-in with OpenID Connect under way is a flow cookie the service
// signed: random bits, its expiry and an HMAC over both. Starting a sign-in
// (an unauthenticated GET anyone may repeat) stores nothing. The callback
// checks the signature and the expiry, and, once the provider's ID token
// verified, records the flow as used (FinishOIDCLogin) until its expiry:
// a flow completes once, on any replica.

// OIDCLoginLifetime bounds a sign-in with OpenID Connect, from the click
// on "Sign in with …" to the provider's answer.
const OIDCLoginLifetime = 10 * time.Minute

func errOIDCFlow() error {
	return errorf(KindUnauthorized, "this sign-in is unknown, finished already or too old")
}

// NewOIDCFlow returns a new flow cookie, valid for OIDCLoginLifetime.
func (s *Service) NewOIDCFlow() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	body := base64.RawURLEncoding.EncodeToString(b) + "." + strconv.FormatInt(s.now().Add(OIDCLoginLifetime).Unix(), 10)
	return body + "." + s.oidcFlowMAC(body)
}

func (s *Service) oidcFlowMAC(body string) string {
	m := hmac.New(sha256.New, s.keys.oidcFlow)
	m.Write([]byte(body))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// CheckOIDCFlow checks a flow cookie: signed by this service (any replica
// with the same master key) and not expired. Anything else is
// KindUnauthorized.
func (s *Service) CheckOIDCFlow(cookie string) (expires time.Time, err error) {
	if len(cookie) > maxCookieLen {
		return time.Time{}, errOIDCFlow()
	}
	i := strings.LastIndexByte(cookie, '.')
	if i < 0 || !hmac.Equal([]byte(cookie[i+1:]), []byte(s.oidcFlowMAC(cookie[:i]))) {
		return time.Time{}, errOIDCFlow()
	}
	_, exp, _ := strings.Cut(cookie[:i], ".")
	unix, err := strconv.ParseInt(exp, 10, 64)
	if err != nil || !s.now().Before(time.Unix(unix, 0)) {
		return time.Time{}, errOIDCFlow()
	}
	return time.Unix(unix, 0).UTC(), nil
}

// FinishOIDCLogin records a checked flow as used; a flow used already (a
// replayed callback) is KindUnauthorized.
func (s *Service) FinishOIDCLogin(ctx context.Context, cookie string) error {
	expires, err := s.CheckOIDCFlow(cookie)
	if err != nil {
		return err
	}
	err = s.store.UseOIDCLogin(ctx, sessionID(cookie), s.now().UTC(), expires)
	if errors.Is(err, store.ErrConflict) {
		return errOIDCFlow()
	}
	return s.storeErr(err)
}

package console

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/appkeys/appkeys/internal/keyservice"
	"github.com/appkeys/appkeys/internal/servicetest"
)

func TestSessionCookieIsSecureOnlyOverTLS(t *testing.T) {
	for _, overTLS := range []bool{false, true} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		if overTLS {
			r.TLS = &tls.ConnectionState{}
		}
		w := httptest.NewRecorder()
		setCookie(w, r, sessionCookie, "id", 60)
		c := w.Header().Get("Set-Cookie")
		if strings.Contains(c, "; Secure") != overTLS || !strings.Contains(c, "HttpOnly") || !strings.Contains(c, "SameSite=Strict") {
			t.Errorf("over TLS %v: Set-Cookie %q", overTLS, c)
		}
	}
}

// testConsole is a console on a running key service with a settable
// clock, and a session of the bootstrap owner.
func testConsole(t *testing.T) (*console, session, *servicetest.Clock) {
	t.Helper()
	clk := servicetest.NewClock(time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC))
	ts := servicetest.Start(t, servicetest.WithClock(clk))
	svc := ts.Server.Service
	cookie, started, err := svc.StartConsoleSession(context.Background(), ts.OwnerToken, "")
	if err != nil {
		t.Fatal(err)
	}
	return newConsole(svc, slog.New(slog.DiscardHandler)), newSession(cookie, started), clk
}

func TestSessionsExpireAndNoticesShowOnce(t *testing.T) {
	ctx := context.Background()
	c, sess, clk := testConsole(t)
	got, err := c.svc.ConsoleSession(ctx, sess.cookie)
	if err != nil || got.CSRF != sess.CSRF || got.CSRF == "" || got.CSRF == sess.cookie || got.Caller.User == nil {
		t.Fatalf("get after create: %+v %v", got, err)
	}

	c.setFlash(ctx, sess, "Revoked.")
	got, _ = c.svc.ConsoleSession(ctx, sess.cookie)
	fresh := newSession(sess.cookie, got)
	if msg := c.popFlash(ctx, &fresh); msg != "Revoked." {
		t.Fatalf("popFlash = %q", msg)
	}
	if msg := c.popFlash(ctx, &fresh); msg != "" {
		t.Fatalf("popFlash twice on one request = %q", msg)
	}
	got, _ = c.svc.ConsoleSession(ctx, sess.cookie)
	again := newSession(sess.cookie, got)
	if msg := c.popFlash(ctx, &again); msg != "" || got.Flash != "" {
		t.Fatalf("the notice was shown twice: %q %q", msg, got.Flash)
	}

	clk.Add(sessionLifetime)
	if _, err := c.svc.ConsoleSession(ctx, sess.cookie); keyservice.KindOf(err) != keyservice.KindUnauthorized {
		t.Errorf("the session outlived %v: %v", sessionLifetime, err)
	}
}

func TestExpiryFromDate(t *testing.T) {
	now := time.Date(2026, 3, 10, 15, 4, 5, 0, time.UTC)
	cases := []struct {
		in   string
		want time.Time
		msg  string
	}{
		{"2026-03-11", time.Date(2026, 3, 11, 15, 4, 5, 0, time.UTC), ""},
		{"2027-03-10", now.AddDate(0, 0, 365), ""},
		{"2026-03-10", time.Time{}, "The expiration date must be after today."},
		{"2026-01-01", time.Time{}, "The expiration date must be after today."},
		{"", time.Time{}, "Choose an expiration date."},
		{"10/03/2026", time.Time{}, "The expiration date is not a date. Use the date picker or a quick choice."},
	}
	for _, tc := range cases {
		got, msg := expiryFromDate(tc.in, now)
		if !got.Equal(tc.want) || msg != tc.msg {
			t.Errorf("expiryFromDate(%q) = %v, %q; want %v, %q", tc.in, got, msg, tc.want, tc.msg)
		}
	}
}

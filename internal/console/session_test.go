package console

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
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

func TestSessionsExpireAndPendingKeysAreTakenOnce(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	s := newSessions(func() time.Time { return now })
	sess := s.create("aku_token")
	if got, ok := s.get(sess.id); !ok || got.token != "aku_token" || got.csrf == "" || got.csrf == got.id {
		t.Fatalf("get after create: %+v %v", got, ok)
	}
	flow := s.putPending(sess.id, pendingKey{plain: "cak_x", appID: "app_1"})
	if p, ok := s.takePending(sess.id, flow); !ok || p.plain != "cak_x" {
		t.Fatalf("take pending: %+v %v", p, ok)
	}
	if _, ok := s.takePending(sess.id, flow); ok {
		t.Errorf("a pending key was taken twice")
	}
	flow = s.putPending(sess.id, pendingKey{plain: "cak_y"})
	now = now.Add(pendingLifetime)
	if _, ok := s.takePending(sess.id, flow); ok {
		t.Errorf("a pending key outlived %v", pendingLifetime)
	}
	if _, ok := s.takePending("other-session", flow); ok {
		t.Errorf("another session took the pending key")
	}
	now = now.Add(sessionLifetime)
	if _, ok := s.get(sess.id); ok {
		t.Errorf("the session outlived %v", sessionLifetime)
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

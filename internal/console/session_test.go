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

// Which requests count as https, and so get Secure, __Host- cookies.
func TestConsoleKnowsWhenTheBrowserIsOnHTTPS(t *testing.T) {
	trusted, err := ParseTrustedProxies([]string{"10.0.0.0/8", "fd00::/8"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		publicURL string
		tls       bool
		remote    string
		xfp       string
		want      bool
	}{
		{name: "plain http", remote: "192.0.2.1:5000"},
		{name: "TLS", tls: true, remote: "192.0.2.1:5000", want: true},
		{name: "public URL https", publicURL: "https://keys.example.com", remote: "192.0.2.1:5000", want: true},
		{name: "public URL HTTPS in capitals", publicURL: "HTTPS://keys.example.com", remote: "192.0.2.1:5000", want: true},
		{name: "public URL http", publicURL: "http://keys.example.com", remote: "10.0.0.1:5000"},
		{name: "XFP from a trusted proxy", remote: "10.1.2.3:5000", xfp: "https", want: true},
		{name: "XFP from a trusted IPv6 proxy", remote: "[fd00::1]:5000", xfp: "HTTPS", want: true},
		{name: "XFP from a trusted proxy, chain", remote: "10.1.2.3:5000", xfp: "https, http", want: true},
		{name: "XFP http from a trusted proxy", remote: "10.1.2.3:5000", xfp: "http"},
		{name: "XFP from an untrusted client", remote: "192.0.2.1:5000", xfp: "https"},
		{name: "XFP from an IPv4-mapped untrusted client", remote: "[::ffff:192.0.2.1]:5000", xfp: "https"},
		{name: "XFP from an IPv4-mapped trusted proxy", remote: "[::ffff:10.0.0.9]:5000", xfp: "https", want: true},
		{name: "XFP with no address", remote: "", xfp: "https"},
	} {
		c := &console{trustedProxies: trusted}
		c.publicHTTPS = newConsole(nil, Options{PublicURL: tc.publicURL}).publicHTTPS
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.RemoteAddr = tc.remote
		if tc.tls {
			r.TLS = &tls.ConnectionState{}
		}
		if tc.xfp != "" {
			r.Header.Set("X-Forwarded-Proto", tc.xfp)
		}
		if got := c.secure(r); got != tc.want {
			t.Errorf("%s: secure = %v, want %v", tc.name, got, tc.want)
		}
		w := httptest.NewRecorder()
		c.setCookie(w, r, sessionCookie, "id", 60)
		line := w.Header().Get("Set-Cookie")
		if strings.HasPrefix(line, "__Host-appkeys_session=id;") != tc.want || strings.Contains(line, "; Secure") != tc.want ||
			!strings.Contains(line, "HttpOnly") || !strings.Contains(line, "SameSite=Strict") || !strings.Contains(line, "Path=/") || strings.Contains(line, "Domain") {
			t.Errorf("%s: Set-Cookie %q", tc.name, line)
		}
	}
}

func TestParseTrustedProxies(t *testing.T) {
	got, err := ParseTrustedProxies([]string{"10.0.0.0/8", " 192.0.2.7 ", "2001:db8::/32", "::ffff:198.51.100.1", "private_ranges", ""})
	if err != nil {
		t.Fatal(err)
	}
	var s []string
	for _, p := range got {
		s = append(s, p.String())
	}
	want := "10.0.0.0/8 192.0.2.7/32 2001:db8::/32 198.51.100.1/32 192.168.0.0/16 172.16.0.0/12 10.0.0.0/8 127.0.0.0/8 fd00::/8 ::1/128"
	if strings.Join(s, " ") != want {
		t.Errorf("ParseTrustedProxies = %s\nwant %s", strings.Join(s, " "), want)
	}
	for _, bad := range []string{"10.0.0.0/33", "example.com", "10.0.0", "*"} {
		if _, err := ParseTrustedProxies([]string{bad}); err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("ParseTrustedProxies(%q) = %v, want an error naming it", bad, err)
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
	return newConsole(svc, Options{Logger: slog.New(slog.DiscardHandler)}), newSession(cookie, started), clk
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

package store

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/appkeys/appkeys/internal/store/pgtest"
)

func TestPGPoolSettings(t *testing.T) {
	tests := []struct {
		dsn     string
		want    poolSettings
		rest    string // the query left for pgx
		wantErr string
	}{
		{dsn: "postgres://u:pw@db:5432/appkeys?sslmode=require", want: poolSettings{20, 5 * time.Minute, time.Hour}, rest: "sslmode=require"},
		{dsn: "postgres://u:pw@db/appkeys?pool_max_conns=40&sslmode=disable&pool_max_conn_idle_time=30s&pool_max_conn_lifetime=0s", want: poolSettings{40, 30 * time.Second, 0}, rest: "sslmode=disable"},
		{dsn: "postgresql://db/appkeys?pool_max_conn_lifetime=2h", want: poolSettings{20, 5 * time.Minute, 2 * time.Hour}, rest: ""},
		{dsn: "postgres://u:secretpw@db/appkeys?pool_max_conns=0", wantErr: "pool_max_conns"},
		{dsn: "postgres://u:secretpw@db/appkeys?pool_max_conns=many", wantErr: "pool_max_conns"},
		{dsn: "postgres://u:secretpw@db/appkeys?pool_max_conn_idle_time=5", wantErr: "pool_max_conn_idle_time"},
		{dsn: "postgres://u:secretpw@db/appkeys?pool_max_conn_lifetime=-1m", wantErr: "pool_max_conn_lifetime"},
		{dsn: "postgres://u:secretpw@db/%zz", wantErr: "does not parse"},
		{dsn: "postgres://u:secretpw@db/appkeys?pool_min_conns=2", wantErr: "pool_min_conns"},
	}
	for _, tt := range tests {
		t.Run(tt.dsn, func(t *testing.T) {
			rest, got, err := pgPoolSettings(tt.dsn)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one naming %s", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "secretpw") {
					t.Fatalf("the error quotes the password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("settings %+v, want %+v", got, tt.want)
			}
			u, err := url.Parse(rest)
			if err != nil {
				t.Fatal(err)
			}
			if u.RawQuery != tt.rest {
				t.Errorf("query left for pgx %q, want %q", u.RawQuery, tt.rest)
			}
		})
	}
}

// TestPGPoolSettingsApplied opens a real PostgreSQL store with pool
// settings in its URL: they bound the pool, and pgx never sees them (it
// would send them to the server, which refuses unknown parameters).
func TestPGPoolSettingsApplied(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	s, err := Open(context.Background(), dsn+sep+"pool_max_conns=3&pool_max_conn_idle_time=1m")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := s.db.Stats().MaxOpenConnections; n != 3 {
		t.Errorf("MaxOpenConnections %d, want 3", n)
	}
	if _, err := Open(context.Background(), dsn+sep+"pool_max_conns=zero"); err == nil {
		t.Error("a bad pool_max_conns was accepted")
	}
}

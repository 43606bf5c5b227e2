// Package pgtest gives tests a fresh PostgreSQL database on the throwaway
// cluster that scripts/with-postgres.sh (run by make test) starts and names
// in APPKEYS_TEST_DATABASE_URL. Without that cluster the tests are skipped,
// except under CI=true, where they fail: CI must never pass by skipping.
package pgtest

import (
	"context"
	"database/sql"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/appkeys/appkeys/internal/apikey"

	_ "github.com/jackc/pgx/v5/stdlib"
)

// EnvURL names the variable with the cluster's admin URL.
const EnvURL = "APPKEYS_TEST_DATABASE_URL"

// Available reports whether a test cluster is configured.
func Available() bool { return os.Getenv(EnvURL) != "" }

// Require skips (or, under CI=true, fails) t when no cluster is configured.
func Require(t testing.TB) string {
	t.Helper()
	admin := os.Getenv(EnvURL)
	if admin == "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not set: run the tests with make test (scripts/with-postgres.sh starts PostgreSQL)", EnvURL)
		}
		t.Skipf("%s is not set; run make test for the PostgreSQL tests", EnvURL)
	}
	return admin
}

// NewDatabase creates an empty database for t, dropped when t ends, and
// returns its URL.
func NewDatabase(t testing.TB) string {
	t.Helper()
	admin := Require(t)
	name := "appkeys_test_" + strings.ToLower(apikey.Random(12))
	db, err := sql.Open("pgx", admin)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := db.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		db.Close()
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := db.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Logf("drop test database: %v", err)
		}
		db.Close()
	})
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

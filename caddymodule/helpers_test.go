package caddymodule

import (
	"net/http"
	"testing"

	"github.com/appkeys/appkeys/internal/apikey"
)

func mustKey(t *testing.T) string {
	t.Helper()
	k, err := apikey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func canonical(s string) string { return http.CanonicalHeaderKey(s) }

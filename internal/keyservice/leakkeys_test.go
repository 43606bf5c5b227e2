package keyservice

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func pemOf(t *testing.T, pub any) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

func keysDoc(id, key string) string {
	b, _ := json.Marshal(map[string]any{"public_keys": []map[string]any{{"key_identifier": id, "key": key, "is_current": true}}})
	return string(b)
}

// TestLeakKeysDocument: only a document of P-256 public keys, each with
// its identifier, is taken; anything else stops the service at start
// (--leak-keys-file) rather than at the first report.
func TestLeakKeysDocument(t *testing.T) {
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	good := pemOf(t, &p256.PublicKey)
	for name, doc := range map[string]string{
		"not JSON":          "public_keys:",
		"no keys":           `{"public_keys": []}`,
		"a P-384 key":       keysDoc("k", pemOf(t, &p384.PublicKey)),
		"an RSA key":        keysDoc("k", pemOf(t, &rsaKey.PublicKey)),
		"not PEM":           keysDoc("k", "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE"),
		"a certificate PEM": keysDoc("k", strings.Replace(good, "PUBLIC KEY", "CERTIFICATE", 2)),
		"no identifier":     keysDoc("", good),
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "keys.json")
			if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := newLeakKeys("", path, nil, time.Now); err == nil {
				t.Fatal("accepted")
			}
		})
	}
	if _, err := newLeakKeys("", filepath.Join(t.TempDir(), "missing.json"), nil, time.Now); err == nil {
		t.Fatal("a missing file accepted")
	}
	path := filepath.Join(t.TempDir(), "keys.json")
	if err := os.WriteFile(path, []byte(keysDoc("k", good)), 0o600); err != nil {
		t.Fatal(err)
	}
	k, err := newLeakKeys("", path, nil, time.Now)
	if err != nil || k.get("k") == nil {
		t.Fatalf("a good document: %v", err)
	}
	if _, err := newLeakKeys("https://example.invalid/keys", path, nil, time.Now); err == nil {
		t.Fatal("a URL and a file together accepted")
	}
}

// TestLeakThrottleIsBounded: budgets kept per client address do not grow
// with the addresses an attacker sends from.
func TestLeakThrottleIsBounded(t *testing.T) {
	f := newFailureThrottle(1, 1)
	f.max = 100
	now := time.Now()
	for i := range 1000 {
		f.allow(strings.Repeat("x", i%7)+string(rune('a'+i%26))+time.Duration(i).String(), now)
		if len(f.apps) > f.max {
			t.Fatalf("%d limiters kept; want at most %d", len(f.apps), f.max)
		}
	}
}

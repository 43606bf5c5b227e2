// Package leaktest stands in for GitHub's secret scanning partner program
// in tests and benchmarks: ECDSA P-256 key pairs made on the spot sign leak
// reports, and a server on 127.0.0.1 publishes their public keys the way
// api.github.com/meta/public_keys/secret_scanning does, with ETags, and
// counts the requests it gets. Nothing here reaches the internet.
package leaktest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
)

// Signer is one of "GitHub's" signing keys.
type Signer struct {
	ID  string // the key identifier, 64 hex digits as GitHub's are
	key *ecdsa.PrivateKey
}

// NewSigner makes a P-256 key pair.
func NewSigner() *Signer {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err) // crypto/rand does not fail
	}
	der, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
	sum := sha256.Sum256(der)
	return &Signer{ID: hex.EncodeToString(sum[:]), key: k}
}

// Sign answers the Github-Public-Key-Signature of body: base64 of an ASN.1
// DER ECDSA signature over SHA-256 of the body's bytes.
func (s *Signer) Sign(body []byte) string {
	sum := sha256.Sum256(body)
	sig, err := ecdsa.SignASN1(rand.Reader, s.key, sum[:])
	if err != nil {
		panic(err)
	}
	return base64.StdEncoding.EncodeToString(sig)
}

// PEM is the public key as GitHub publishes it.
func (s *Signer) PEM() string {
	der, _ := x509.MarshalPKIXPublicKey(&s.key.PublicKey)
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

// Document is a meta/public_keys/secret_scanning answer listing signers'
// keys; the first is current.
func Document(signers ...*Signer) []byte {
	type entry struct {
		KeyIdentifier string `json:"key_identifier"`
		Key           string `json:"key"`
		IsCurrent     bool   `json:"is_current"`
	}
	d := struct {
		PublicKeys []entry `json:"public_keys"`
	}{PublicKeys: []entry{}}
	for i, s := range signers {
		d.PublicKeys = append(d.PublicKeys, entry{KeyIdentifier: s.ID, Key: s.PEM(), IsCurrent: i == 0})
	}
	b, _ := json.Marshal(d)
	return b
}

// KeyServer publishes a Document on 127.0.0.1, answering 304 to a request
// whose If-None-Match names the current version.
type KeyServer struct {
	*httptest.Server
	mu       sync.Mutex
	doc      []byte
	version  int
	requests atomic.Int64
	notMod   atomic.Int64
}

// NewKeyServer serves a Document of signers. Close it when done.
func NewKeyServer(signers ...*Signer) *KeyServer {
	ks := &KeyServer{doc: Document(signers...), version: 1}
	ks.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ks.requests.Add(1)
		ks.mu.Lock()
		doc, etag := ks.doc, fmt.Sprintf(`"v%d"`, ks.version)
		ks.mu.Unlock()
		w.Header().Set("ETag", etag)
		if r.Header.Get("If-None-Match") == etag {
			ks.notMod.Add(1)
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(doc)
	}))
	return ks
}

// Publish replaces the published keys (a rotation).
func (ks *KeyServer) Publish(signers ...*Signer) {
	ks.mu.Lock()
	ks.doc, ks.version = Document(signers...), ks.version+1
	ks.mu.Unlock()
}

// Requests counts the requests served; NotModified, those answered 304.
func (ks *KeyServer) Requests() int    { return int(ks.requests.Load()) }
func (ks *KeyServer) NotModified() int { return int(ks.notMod.Load()) }

// Match is one match of a report.
type Match struct {
	Token  string `json:"token"`
	Type   string `json:"type"`
	URL    string `json:"url"`
	Source string `json:"source"`
}

// Body is a report's body: the matches of tokens, found in a commit.
func Body(tokens ...string) []byte {
	ms := make([]Match, len(tokens))
	for i, t := range tokens {
		ms[i] = Match{Token: t, Type: "appkeys_api_key", URL: fmt.Sprintf("https://github.com/octocat/hello/blob/abc123/config/%d.env", i), Source: "commit"}
	}
	b, _ := json.Marshal(ms)
	return b
}

// Feedback is one entry of the endpoint's answer.
type Feedback struct {
	TokenHash string `json:"token_hash"`
	TokenType string `json:"token_type"`
	Label     string `json:"label"`
}

// TokenHash is the token_hash GitHub expects for token.
func TokenHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// Post sends body to url (the service's /v1/leaks/github) as GitHub does,
// signed by s (unsigned when s is nil), and answers the status and body.
func Post(ctx context.Context, hc *http.Client, url string, s *Signer, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if s != nil {
		req.Header.Set("Github-Public-Key-Identifier", s.ID)
		req.Header.Set("Github-Public-Key-Signature", s.Sign(body))
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

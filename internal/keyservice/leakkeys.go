package keyservice

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"time"
)

// GitHubLeakKeysURL is where GitHub publishes the public keys that sign
// its secret scanning reports.
const GitHubLeakKeysURL = "https://api.github.com/meta/public_keys/secret_scanning"

// Bounds of the leak reports' public keys.
const (
	// LeakKeysRefreshEvery bounds how often an unknown key identifier
	// makes the service read the public keys again: a stream of reports
	// signed with made-up identifiers costs GitHub (or the file) one
	// request a minute, not one each.
	LeakKeysRefreshEvery = time.Minute
	leakKeysTimeout      = 10 * time.Second
	maxLeakKeysBytes     = 1 << 20
	// A DER ECDSA P-256 signature is at most 72 bytes; base64, 96. Key
	// identifiers are 64 hex digits at GitHub.
	maxSignatureLen     = 200
	maxKeyIdentifierLen = 200
)

// Why a leak report's signature is refused; the API answers each 401.
var (
	errLeakSignatureMissing = errors.New("missing Github-Public-Key-Identifier or Github-Public-Key-Signature")
	errLeakSignatureBad     = errors.New("the signature does not verify")
	errLeakKeyUnknown       = errors.New("unknown public key identifier")
)

// leakKeys is the set of public keys that may sign leak reports, read from
// a document shaped like GitHub's meta/public_keys/secret_scanning answer,
// at a URL (with conditional requests) or in a file. It is read when
// first needed and again, at most every LeakKeysRefreshEvery, when a
// report names an identifier it does not hold. With neither a URL nor a
// file it holds no key, and every report is refused.
type leakKeys struct {
	url, file string
	http      *http.Client
	now       func() time.Time

	mu   sync.RWMutex
	keys map[string]*ecdsa.PublicKey

	// fetchMu makes one read at a time; the reports that wait for it then
	// find the keys it read.
	fetchMu sync.Mutex
	etag    string
	read    bool      // read once at least (successfully or not)
	readAt  time.Time // the last read's start, on the service's clock
	readErr error     // the last read's failure, nil when it worked
}

func newLeakKeys(url, file string, hc *http.Client, now func() time.Time) (*leakKeys, error) {
	if hc == nil {
		hc = &http.Client{Timeout: leakKeysTimeout}
	}
	k := &leakKeys{url: url, file: file, http: hc, now: now, keys: map[string]*ecdsa.PublicKey{}}
	if url != "" && file != "" {
		return nil, errors.New("leak report keys: give a URL or a file, not both")
	}
	if file != "" {
		// A file is read at start, so that a wrong path or a bad document
		// stops the service rather than the first report.
		if err := k.refresh(context.Background()); err != nil {
			return nil, err
		}
	}
	return k, nil
}

func (k *leakKeys) get(id string) *ecdsa.PublicKey {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.keys[id]
}

// key returns the public key named id, reading the keys again when it is
// unknown and they were not read in the last LeakKeysRefreshEvery. A
// failed read is reported only when it leaves id unknown.
func (k *leakKeys) key(ctx context.Context, id string) (*ecdsa.PublicKey, error) {
	if pk := k.get(id); pk != nil {
		return pk, nil
	}
	if k.url == "" && k.file == "" {
		return nil, errLeakKeyUnknown
	}
	k.fetchMu.Lock()
	defer k.fetchMu.Unlock()
	if pk := k.get(id); pk != nil { // read by the report we waited for
		return pk, nil
	}
	if k.read && k.now().Sub(k.readAt) < LeakKeysRefreshEvery {
		if k.readErr != nil {
			// Unknown because the keys could not be read: unavailable
			// (503, which GitHub retries), not a bad signature.
			return nil, k.readErr
		}
		return nil, errLeakKeyUnknown
	}
	// The read serves every report waiting here, not only this one: it
	// must not end when this one's client goes away.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), leakKeysTimeout)
	defer cancel()
	k.readErr = k.refresh(ctx)
	if k.readErr != nil {
		return nil, k.readErr
	}
	if pk := k.get(id); pk != nil {
		return pk, nil
	}
	return nil, errLeakKeyUnknown
}

// refresh reads the document and replaces the keys with those it lists:
// a key GitHub retired stops being accepted. Call it under fetchMu (or
// before the service is shared).
func (k *leakKeys) refresh(ctx context.Context) error {
	k.read, k.readAt = true, k.now()
	var body []byte
	if k.file != "" {
		b, err := os.ReadFile(k.file)
		if err != nil {
			return fmt.Errorf("read leak report keys: %w", err)
		}
		body = b
	} else {
		b, fresh, err := k.fetch(ctx)
		if err != nil || !fresh {
			return err
		}
		body = b
	}
	keys, err := parseLeakKeys(body)
	if err != nil {
		return fmt.Errorf("leak report keys from %s: %w", k.source(), err)
	}
	k.mu.Lock()
	k.keys = keys
	k.mu.Unlock()
	return nil
}

func (k *leakKeys) source() string {
	if k.file != "" {
		return k.file
	}
	return k.url
}

// fetch GETs the document, conditionally on the ETag of the last one;
// fresh is false when it has not changed (304).
func (k *leakKeys) fetch(ctx context.Context) (body []byte, fresh bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.url, nil)
	if err != nil {
		return nil, false, fmt.Errorf("leak report keys URL: %w", err)
	}
	// GitHub's API refuses requests without a User-Agent.
	req.Header.Set("User-Agent", "appkeys")
	req.Header.Set("Accept", "application/vnd.github+json, application/json")
	if k.etag != "" {
		req.Header.Set("If-None-Match", k.etag)
	}
	resp, err := k.http.Do(req)
	if err != nil {
		return nil, false, fmt.Errorf("fetch leak report keys: %w", err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusNotModified:
		return nil, false, nil
	case http.StatusOK:
	default:
		return nil, false, fmt.Errorf("fetch leak report keys from %s: %s", k.url, resp.Status)
	}
	body, err = io.ReadAll(io.LimitReader(resp.Body, maxLeakKeysBytes+1))
	if err != nil {
		return nil, false, fmt.Errorf("fetch leak report keys: %w", err)
	}
	if len(body) > maxLeakKeysBytes {
		return nil, false, fmt.Errorf("leak report keys from %s: more than %d bytes", k.url, maxLeakKeysBytes)
	}
	k.etag = resp.Header.Get("ETag")
	return body, true, nil
}

// parseLeakKeys reads {"public_keys": [{"key_identifier", "key", "is_current"}]}.
// Every listed key is accepted, current or not: GitHub lists a key it is
// rotating away from while reports signed with it may still arrive.
func parseLeakKeys(doc []byte) (map[string]*ecdsa.PublicKey, error) {
	var d struct {
		PublicKeys []struct {
			KeyIdentifier string `json:"key_identifier"`
			Key           string `json:"key"`
			IsCurrent     bool   `json:"is_current"`
		} `json:"public_keys"`
	}
	if err := json.Unmarshal(doc, &d); err != nil {
		return nil, fmt.Errorf("not a public_keys document: %w", err)
	}
	keys := map[string]*ecdsa.PublicKey{}
	for _, e := range d.PublicKeys {
		pk, err := parseP256(e.Key)
		if err != nil {
			return nil, fmt.Errorf("key %q: %w", e.KeyIdentifier, err)
		}
		if e.KeyIdentifier == "" {
			return nil, errors.New("a key without key_identifier")
		}
		keys[e.KeyIdentifier] = pk
	}
	if len(keys) == 0 {
		return nil, errors.New("no public keys listed")
	}
	return keys, nil
}

func parseP256(p string) (*ecdsa.PublicKey, error) {
	block, _ := pem.Decode([]byte(p))
	if block == nil || block.Type != "PUBLIC KEY" {
		return nil, errors.New("not a PEM PUBLIC KEY")
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	pk, ok := pub.(*ecdsa.PublicKey)
	if !ok || pk.Curve != elliptic.P256() {
		return nil, errors.New("not an ECDSA P-256 key")
	}
	return pk, nil
}

// verify checks a report's signature: base64 of an ASN.1 DER ECDSA
// signature, by the key named id, of SHA-256 over the body exactly as it
// came. Headers that are missing or cannot be a signature are refused
// before any key is looked up, so they never cause a read of the keys.
func (k *leakKeys) verify(ctx context.Context, id, signature string, body []byte) error {
	if id == "" || signature == "" || len(id) > maxKeyIdentifierLen || len(signature) > maxSignatureLen {
		return errLeakSignatureMissing
	}
	sig, err := base64.StdEncoding.DecodeString(signature)
	if err != nil {
		return errLeakSignatureBad
	}
	pk, err := k.key(ctx, id)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(body)
	if !ecdsa.VerifyASN1(pk, sum[:], sig) {
		return errLeakSignatureBad
	}
	return nil
}

package keyservice

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// MasterKeyLen is the length of the master key in bytes.
const MasterKeyLen = 32

// LoadMasterKey returns the master key: from env (base64) when it is set,
// else from dataDir/master.key, generated there with mode 0600 when absent.
// created reports a newly generated key.
func LoadMasterKey(env, dataDir string) (key []byte, created bool, err error) {
	if env != "" {
		key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(env))
		if err != nil {
			return nil, false, errors.New("APPKEYS_MASTER_KEY is not valid base64")
		}
		if len(key) != MasterKeyLen {
			return nil, false, fmt.Errorf("APPKEYS_MASTER_KEY decodes to %d bytes; want %d", len(key), MasterKeyLen)
		}
		return key, false, nil
	}
	if dataDir == "" {
		return nil, false, errors.New("no master key: set APPKEYS_MASTER_KEY (base64 of 32 bytes) or give a data directory")
	}
	path := filepath.Join(dataDir, "master.key")
	raw, err := os.ReadFile(path)
	if err == nil {
		key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(raw)))
		if err != nil || len(key) != MasterKeyLen {
			return nil, false, fmt.Errorf("%s is not a base64-encoded %d-byte key", path, MasterKeyLen)
		}
		return key, false, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, false, fmt.Errorf("read master key: %w", err)
	}
	key = make([]byte, MasterKeyLen)
	if _, err := rand.Read(key); err != nil {
		return nil, false, err
	}
	// O_EXCL: two processes starting on one data directory must not each
	// write a different key.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, false, fmt.Errorf("create master key: %w", err)
	}
	if _, err := f.WriteString(base64.StdEncoding.EncodeToString(key) + "\n"); err != nil {
		f.Close()
		return nil, false, fmt.Errorf("write master key: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, false, fmt.Errorf("write master key: %w", err)
	}
	return key, true, nil
}

// keyring holds the subkeys derived from the master key, one per purpose,
// so that no two uses share a key.
type keyring struct {
	keyHash   []byte // HMAC secret for API key hashes (version 1)
	tokenHash []byte // HMAC secret for user, verifier and admin tokens
	secrets   cipher.AEAD
	// newKeys seals a key just created in the console into its page's
	// Save As Secret form; sessionCSRF derives a console session's CSRF
	// token from its cookie, so the token needs no storing.
	newKeys     cipher.AEAD
	sessionCSRF []byte
	// oidcFlow signs a sign-in with OpenID Connect's flow cookie, so the
	// start of a sign-in stores nothing (see NewOIDCFlow).
	oidcFlow []byte
}

func newKeyring(master []byte) (*keyring, error) {
	if len(master) != MasterKeyLen {
		return nil, fmt.Errorf("master key is %d bytes; want %d", len(master), MasterKeyLen)
	}
	derive := func(purpose string) ([]byte, error) {
		return hkdf.Key(sha256.New, master, nil, "appkeys "+purpose, 32)
	}
	kh, err := derive("key-hash v1")
	if err != nil {
		return nil, err
	}
	th, err := derive("token-hash v1")
	if err != nil {
		return nil, err
	}
	gcm := func(purpose string) (cipher.AEAD, error) {
		k, err := derive(purpose)
		if err != nil {
			return nil, err
		}
		block, err := aes.NewCipher(k)
		if err != nil {
			return nil, err
		}
		return cipher.NewGCM(block)
	}
	aead, err := gcm("secrets v1")
	if err != nil {
		return nil, err
	}
	// "console-sessions v1" sealed session rows until they held nothing
	// secret; a purpose name is never reused for another use.
	newKeys, err := gcm("console-new-key v1")
	if err != nil {
		return nil, err
	}
	csrf, err := derive("console-csrf v1")
	if err != nil {
		return nil, err
	}
	oidcFlow, err := derive("console-oidc-flow v1")
	if err != nil {
		return nil, err
	}
	return &keyring{keyHash: kh, tokenHash: th, secrets: aead, newKeys: newKeys, sessionCSRF: csrf, oidcFlow: oidcFlow}, nil
}

func (k *keyring) hashToken(token string) string {
	m := hmac.New(sha256.New, k.tokenHash)
	m.Write([]byte(token))
	return "v1:" + hex.EncodeToString(m.Sum(nil))
}

// sealVersion prefixes every ciphertext so the format can change later.
const sealVersion = 1

// seal encrypts a secret value with AES-256-GCM. The organization and name
// are bound as additional data, so a ciphertext moved to another row does
// not decrypt.
func (k *keyring) seal(orgID, name string, value []byte) ([]byte, error) {
	return sealWith(k.secrets, []byte(orgID+"\x00"+name), value)
}

func (k *keyring) open(orgID, name string, sealed []byte) ([]byte, error) {
	v, err := openWith(k.secrets, []byte(orgID+"\x00"+name), sealed)
	if errors.Is(err, errSealFormat) {
		return nil, errors.New("stored secret has an unknown format")
	}
	if err != nil {
		return nil, errors.New("stored secret cannot be decrypted: was the master key changed?")
	}
	return v, nil
}

// sessionCSRFToken derives the CSRF token of the console session whose
// cookie is cookie.
func (k *keyring) sessionCSRFToken(cookie string) string {
	m := hmac.New(sha256.New, k.sessionCSRF)
	m.Write([]byte(cookie))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

var errSealFormat = errors.New("sealed value has an unknown format")

// sealWith encrypts value with a random nonce: version byte, nonce,
// ciphertext and tag. aad is bound in, so a ciphertext copied to another
// row does not open.
func sealWith(aead cipher.AEAD, aad, value []byte) ([]byte, error) {
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	out := append([]byte{sealVersion}, nonce...)
	return aead.Seal(out, nonce, value, aad), nil
}

func openWith(aead cipher.AEAD, aad, sealed []byte) ([]byte, error) {
	ns := aead.NonceSize()
	if len(sealed) < 1+ns || sealed[0] != sealVersion {
		return nil, errSealFormat
	}
	return aead.Open(nil, sealed[1:1+ns], sealed[1+ns:], aad)
}

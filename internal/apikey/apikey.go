// Package apikey defines the text form of an appkeys API key and the
// operations on it that both the key service and the sidecar need: generating
// a key, rejecting a malformed one locally (no network call), deriving its
// display prefix, and the keyed hash under which the key service stores it.
//
// A key reads
//
//	cak_ <43 base62 characters of randomness> <6 base62 characters of CRC32>
//
// 43 uniformly chosen base62 characters carry 256.03 bits from crypto/rand.
// The checksum covers everything before it, so a typo or a truncated paste is
// caught before any lookup.
package apikey

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"hash/crc32"
	"strconv"
	"strings"
	"unsafe"
)

const (
	// Prefix starts every key.
	Prefix = "cak_"
	// BodyLen is the number of random base62 characters.
	BodyLen = 43
	// ChecksumLen is the number of base62 characters of the CRC32 checksum.
	ChecksumLen = 6
	// Len is the fixed length of a key.
	Len = len(Prefix) + BodyLen + ChecksumLen
	// DisplayLen is the length of the display prefix: "cak_" and 6 characters.
	DisplayLen = len(Prefix) + 6

	alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
)

// Reasons a key is malformed. Each ParseError wraps exactly one of them.
var (
	ErrPrefix   = errors.New("key must start with " + Prefix)
	ErrLength   = fmt.Errorf("key must be %d characters long", Len)
	ErrAlphabet = errors.New("key may contain only the characters 0-9, A-Z and a-z after its prefix")
	ErrChecksum = errors.New("key checksum does not match: the key was mistyped or truncated")
)

// ParseError says why a string is not a well-formed key. It never includes
// the string itself, so it is safe to log and to return to clients.
type ParseError struct{ reason error }

func (e *ParseError) Error() string { return "malformed API key: " + e.reason.Error() }
func (e *ParseError) Unwrap() error { return e.reason }

// Generate returns a new random key. Its error is always nil (see Random);
// the signature stays for the many callers outside the key service.
func Generate() (string, error) {
	k := Prefix + Random(BodyLen)
	sum := checksum(k)
	return k + string(sum[:]), nil
}

// Random returns n uniformly random base62 characters from crypto/rand, for
// keys, tokens and ids. crypto/rand.Read never fails since Go 1.24 (it
// crashes the program rather than return short), so neither does this.
func Random(n int) string {
	out := make([]byte, 0, n)
	// Rejection sampling keeps each character uniform: bytes >= 248 would
	// favour the first 8 letters of the alphabet.
	buf := make([]byte, n+n/4+8)
	for len(out) < n {
		_, _ = rand.Read(buf)
		for _, c := range buf {
			if c < 248 && len(out) < n {
				out = append(out, alphabet[c%62])
			}
		}
	}
	return string(out)
}

// Parse checks that s is a well-formed key: prefix, length, alphabet and
// checksum. It returns a *ParseError naming the first problem found.
func Parse(s string) error {
	if !strings.HasPrefix(s, Prefix) {
		return &ParseError{ErrPrefix}
	}
	if len(s) != Len {
		return &ParseError{ErrLength}
	}
	for i := len(Prefix); i < Len; i++ {
		if !isBase62(s[i]) {
			return &ParseError{ErrAlphabet}
		}
	}
	want := checksum(s[:Len-ChecksumLen])
	if subtle.ConstantTimeCompare(want[:], bytesOf(s[Len-ChecksumLen:])) != 1 {
		return &ParseError{ErrChecksum}
	}
	return nil
}

// DisplayPrefix returns the short, non-secret prefix shown in lists
// ("cak_" and the first 6 random characters). s must be well formed.
func DisplayPrefix(s string) string {
	if len(s) < DisplayLen {
		return s
	}
	return s[:DisplayLen]
}

// Fingerprint is an unkeyed SHA-256 of a key, for in-memory indexes such as
// the sidecar's cache. A key has 256 random bits, so its fingerprint cannot
// be reversed by guessing; it still never leaves the process.
func Fingerprint(s string) [sha256.Size]byte { return sha256.Sum256(bytesOf(s)) }

// bytesOf views s as bytes without copying, for the hot path; the bytes are
// only read.
func bytesOf(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

func isBase62(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z'
}

// checksum returns the CRC32 (IEEE) of s as ChecksumLen base62 characters,
// zero-padded so that every key has the same length.
func checksum(s string) [ChecksumLen]byte {
	v := crc32.ChecksumIEEE(bytesOf(s))
	var out [ChecksumLen]byte
	for i := ChecksumLen - 1; i >= 0; i-- {
		out[i] = alphabet[v%62]
		v /= 62
	}
	return out
}

// Hasher computes the keyed hash under which a key is stored: HMAC-SHA-256
// with a server secret. Secrets are versioned so they can be rotated: new
// hashes use the current version, lookups try every version still known.
type Hasher struct {
	current  int
	versions map[int][]byte
}

// NewHasher returns a Hasher whose current secret is secrets[current].
// Every secret must be at least 32 bytes.
func NewHasher(current int, secrets map[int][]byte) (*Hasher, error) {
	if _, ok := secrets[current]; !ok {
		return nil, fmt.Errorf("no hash secret for current version %d", current)
	}
	h := &Hasher{current: current, versions: make(map[int][]byte, len(secrets))}
	for v, s := range secrets {
		if len(s) < 32 {
			return nil, fmt.Errorf("hash secret version %d is %d bytes; want at least 32", v, len(s))
		}
		h.versions[v] = append([]byte(nil), s...)
	}
	return h, nil
}

// Hash is a stored key hash and the secret version that made it.
type Hash struct {
	Version int
	Sum     []byte
}

// String renders the hash as "v<version>:<hex>", the form kept in the store.
func (h Hash) String() string {
	return "v" + strconv.Itoa(h.Version) + ":" + fmt.Sprintf("%x", h.Sum)
}

// Hash returns the keyed hash of key under the current secret version.
func (h *Hasher) Hash(key string) Hash {
	return Hash{Version: h.current, Sum: mac(h.versions[h.current], key)}
}

// Candidates returns the key's hash under every known version, current first,
// for lookups that must find keys stored before a rotation.
func (h *Hasher) Candidates(key string) []Hash {
	out := []Hash{h.Hash(key)}
	for v, s := range h.versions {
		if v != h.current {
			out = append(out, Hash{Version: v, Sum: mac(s, key)})
		}
	}
	return out
}

// Matches reports in constant time whether key hashes to stored.
func (h *Hasher) Matches(key string, stored Hash) bool {
	s, ok := h.versions[stored.Version]
	if !ok {
		return false
	}
	return hmac.Equal(mac(s, key), stored.Sum)
}

func mac(secret []byte, key string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(key))
	return m.Sum(nil)
}

// IsBase62 reports whether s is made of base62 characters only.
func IsBase62(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isBase62(s[i]) {
			return false
		}
	}
	return true
}

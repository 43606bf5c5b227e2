package apikey

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestGenerateIsWellFormedAndUnique(t *testing.T) {
	seen := make(map[string]bool)
	for i := 0; i < 2000; i++ {
		k, err := Generate()
		if err != nil {
			t.Fatal(err)
		}
		if len(k) != Len {
			t.Fatalf("len(%q) = %d, want %d", k, len(k), Len)
		}
		if err := Parse(k); err != nil {
			t.Fatalf("Parse(generated) = %v", err)
		}
		if seen[k] {
			t.Fatalf("duplicate key after %d draws", i)
		}
		seen[k] = true
	}
}

func TestGenerateUsesWholeAlphabet(t *testing.T) {
	counts := make(map[byte]int)
	for i := 0; i < 500; i++ {
		k, _ := Generate()
		for j := len(Prefix); j < len(Prefix)+BodyLen; j++ {
			counts[k[j]]++
		}
	}
	if len(counts) != 62 {
		t.Fatalf("saw %d distinct characters, want 62", len(counts))
	}
	// 21,500 draws over 62 symbols: about 347 each. A biased generator
	// (modulo without rejection) would push 8 of them above ~430.
	for c, n := range counts {
		if n < 250 || n > 450 {
			t.Errorf("character %q drawn %d times; want about 347", c, n)
		}
	}
}

func TestParseRejects(t *testing.T) {
	good, _ := Generate()
	flip := []byte(good)
	flip[10] ^= 0x01 // stays in the alphabet for digits and letters
	if !isBase62(flip[10]) {
		flip[10] = 'A'
		if good[10] == 'A' {
			flip[10] = 'B'
		}
	}
	cases := []struct {
		name string
		in   string
		want error
	}{
		{"empty", "", ErrPrefix},
		{"wrong prefix", "sk_" + good[3:], ErrPrefix},
		{"upper prefix", "CAK_" + good[4:], ErrPrefix},
		{"short", good[:Len-1], ErrLength},
		{"long", good + "0", ErrLength},
		{"bad alphabet", good[:20] + "-" + good[21:], ErrAlphabet},
		{"space", good[:20] + " " + good[21:], ErrAlphabet},
		{"non-ascii", good[:20] + "\xc3" + good[21:], ErrAlphabet},
		{"typo", string(flip), ErrChecksum},
		{"bad checksum", good[:Len-1] + string(alphabet[(strings.IndexByte(alphabet, good[Len-1])+1)%62]), ErrChecksum},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := Parse(c.in)
			if !errors.Is(err, c.want) {
				t.Fatalf("Parse = %v, want %v", err, c.want)
			}
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %T is not a *ParseError", err)
			}
			if len(c.in) > 8 && strings.Contains(err.Error(), c.in[8:]) {
				t.Fatalf("error message %q contains the key", err)
			}
		})
	}
}

func TestDisplayPrefix(t *testing.T) {
	k, _ := Generate()
	p := DisplayPrefix(k)
	if len(p) != DisplayLen || !strings.HasPrefix(k, p) {
		t.Fatalf("DisplayPrefix = %q", p)
	}
}

func TestHasher(t *testing.T) {
	s1 := bytes.Repeat([]byte{1}, 32)
	s2 := bytes.Repeat([]byte{2}, 32)
	old, err := NewHasher(1, map[int][]byte{1: s1})
	if err != nil {
		t.Fatal(err)
	}
	rotated, err := NewHasher(2, map[int][]byte{1: s1, 2: s2})
	if err != nil {
		t.Fatal(err)
	}
	k, _ := Generate()
	other, _ := Generate()
	h := old.Hash(k)
	if h.Version != 1 || len(h.Sum) != 32 {
		t.Fatalf("hash = %+v", h)
	}
	if !strings.HasPrefix(h.String(), "v1:") || strings.Contains(h.String(), k) {
		t.Fatalf("String() = %q", h.String())
	}
	if !rotated.Matches(k, h) {
		t.Fatal("rotated hasher does not match a hash made before rotation")
	}
	if rotated.Matches(other, h) {
		t.Fatal("another key matches")
	}
	if rotated.Hash(k).Version != 2 || bytes.Equal(rotated.Hash(k).Sum, h.Sum) {
		t.Fatal("rotated hasher does not hash with the new version")
	}
	found := false
	for _, c := range rotated.Candidates(k) {
		found = found || (c.Version == 1 && bytes.Equal(c.Sum, h.Sum))
	}
	if !found {
		t.Fatal("Candidates misses the old version")
	}
	if _, err := NewHasher(1, map[int][]byte{1: []byte("short")}); err == nil {
		t.Fatal("short secret accepted")
	}
	if _, err := NewHasher(3, map[int][]byte{1: s1}); err == nil {
		t.Fatal("missing current version accepted")
	}
}

func FuzzParse(f *testing.F) {
	k, _ := Generate()
	for _, s := range []string{"", "cak_", k, k[:Len-1], k + "x", "cak_" + strings.Repeat("0", BodyLen+ChecksumLen), "Bearer " + k} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := Parse(s)
		if err == nil {
			sum := checksum(s[:Len-ChecksumLen])
			if len(s) != Len || !strings.HasPrefix(s, Prefix) || string(sum[:]) != s[Len-ChecksumLen:] {
				t.Fatalf("Parse accepted %q", s)
			}
			return
		}
		var pe *ParseError
		if !errors.As(err, &pe) {
			t.Fatalf("error %T is not a *ParseError", err)
		}
	})
}

func BenchmarkParse(b *testing.B) {
	k, _ := Generate()
	b.ReportAllocs()
	for b.Loop() {
		if err := Parse(k); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkHash(b *testing.B) {
	h, _ := NewHasher(1, map[int][]byte{1: bytes.Repeat([]byte{7}, 32)})
	k, _ := Generate()
	b.ReportAllocs()
	for b.Loop() {
		h.Hash(k)
	}
}

func BenchmarkFingerprint(b *testing.B) {
	k, _ := Generate()
	b.ReportAllocs()
	for b.Loop() {
		Fingerprint(k)
	}
}

func BenchmarkGenerate(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Generate(); err != nil {
			b.Fatal(err)
		}
	}
}

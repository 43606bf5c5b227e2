package keyservice

import (
	"testing"
	"unicode/utf8"
)

// truncate cuts at a character boundary: an error message that names a
// long secret or email never holds half a character.
func TestTruncateKeepsWholeCharacters(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"short", 64, "short"},
		{"abcdef", 3, "abc…"},
		{"ééé", 3, "é…"},                  // é is 2 bytes: byte 3 is inside the second
		{"日本語", 4, "日…"},                  // 3-byte characters
		{"a😀b", 3, "a…"},                  // a 4-byte character
		{"😀", 2, "…"},                     // nothing whole fits
		{"ab" + "\xff\xfe", 3, "ab\xff…"}, // invalid input stays as it was up to n
	} {
		got := truncate(tc.in, tc.n)
		if got != tc.want {
			t.Errorf("truncate(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
		if utf8.ValidString(tc.in) && !utf8.ValidString(got) {
			t.Errorf("truncate(%q, %d) = %q: not valid UTF-8", tc.in, tc.n, got)
		}
	}
}

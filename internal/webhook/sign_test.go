package webhook

import (
	"testing"
	"time"
)

// The specification's own example: secret, id, timestamp and body, and the
// signature its reference libraries compute for them.
func TestSignatureMatchesTheSpecificationExample(t *testing.T) {
	key, err := SecretBytes("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw") // the specification's public example; gitleaks:allow
	if err != nil {
		t.Fatal(err)
	}
	got := Signature("msg_p5jXN8AQM9LWM0D4loKWxJek", time.Unix(1614265330, 0), []byte(`{"test": 2432232314}`), [][]byte{key})
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; got != want {
		t.Fatalf("signature %q; want %q", got, want)
	}
	two := Signature("msg_p5jXN8AQM9LWM0D4loKWxJek", time.Unix(1614265330, 0), []byte(`{"test": 2432232314}`), [][]byte{key, []byte("another key of 24 bytes!")})
	if len(two) <= len(got)+1 || two[:len(got)+1] != got+" " {
		t.Fatalf("two signatures %q: the current key's first, space-separated", two)
	}
}

func TestSecrets(t *testing.T) {
	s := NewSecret()
	if b, err := SecretBytes(s); err != nil || len(b) != 32 {
		t.Fatalf("SecretBytes(NewSecret()) = %d bytes, %v", len(b), err)
	}
	for _, bad := range []string{"", "whsec_", "whsec_!!!", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_c2hvcnQ="} {
		if _, err := SecretBytes(bad); err == nil {
			t.Errorf("SecretBytes(%q) accepted it", bad)
		}
	}
}

func TestRetryDelays(t *testing.T) {
	want := []time.Duration{5 * time.Second, 30 * time.Second, 2 * time.Minute, 10 * time.Minute, time.Hour, time.Hour, time.Hour}
	for i, w := range want {
		if got := RetryDelay(i + 1); got != w {
			t.Errorf("RetryDelay(%d) = %s; want %s", i+1, got, w)
		}
		for range 100 {
			if j := jitter(w); j < w-w/10 || j > w+w/10 {
				t.Fatalf("jitter(%s) = %s: more than 10%%", w, j)
			}
		}
	}
}

package verify

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"time"
)

// Code is the key service's verdict on a key.
type Code uint8

// The verdicts of POST /v1/verify. The zero value is not a verdict.
const (
	CodeValid Code = iota + 1
	CodeMalformed
	CodeNotFound
	CodeExpired
	CodeRevoked
	CodeOrphaned
	CodeWrongApp
)

var codeNames = [...]string{
	CodeValid:     "VALID",
	CodeMalformed: "MALFORMED",
	CodeNotFound:  "NOT_FOUND",
	CodeExpired:   "EXPIRED",
	CodeRevoked:   "REVOKED",
	CodeOrphaned:  "ORPHANED",
	CodeWrongApp:  "WRONG_APP",
}

// String returns the code as the key service spells it.
func (c Code) String() string {
	if c == 0 || int(c) >= len(codeNames) {
		return "UNKNOWN(" + strconv.Itoa(int(c)) + ")"
	}
	return codeNames[c]
}

// ParseCode maps the key service's spelling to a Code.
func ParseCode(s string) (Code, bool) {
	for c := CodeValid; int(c) < len(codeNames); c++ {
		if codeNames[c] == s {
			return c, true
		}
	}
	return 0, false
}

// permanent reports whether a key with this verdict can never become valid,
// so an outdated negative answer is still a correct one.
func (c Code) permanent() bool {
	switch c {
	case CodeMalformed, CodeExpired, CodeRevoked, CodeOrphaned, CodeWrongApp:
		return true
	}
	return false
}

// Result is the key service's answer about one key, as the sidecar uses it.
type Result struct {
	Valid   bool
	Code    Code
	KeyID   string
	KeyName string
	AppID   string
	// ExpiresAt is the key's own expiry; the zero time means none.
	ExpiresAt time.Time
	// Rate and AllowedNets are a valid key's limits; zero and empty when
	// it has none.
	Rate        Rate
	AllowedNets []netip.Prefix
}

// Source says where a Decision came from, for metrics and logs.
type Source uint8

// Where a decision came from.
const (
	// SourceLocal: decided without cache or network (a malformed key, or a
	// cached key whose own expiry has passed).
	SourceLocal Source = iota + 1
	// SourceCache: a fresh cache entry.
	SourceCache
	// SourceService: an answer of the key service (possibly shared with
	// concurrent callers).
	SourceService
	// SourceStale: a cached answer past its freshness, served because the
	// key service failed.
	SourceStale
)

func (s Source) String() string {
	switch s {
	case SourceLocal:
		return "local"
	case SourceCache:
		return "cache"
	case SourceService:
		return "service"
	case SourceStale:
		return "stale"
	}
	return "unknown"
}

// Decision is the engine's answer for one request.
type Decision struct {
	Result
	Source Source
	// Limits enforces a valid key's limits; nil when it has none. The
	// caller checks them (Permits, Take) before letting the request in.
	Limits *Limits
}

// ErrUnavailable is matched (errors.Is) by every error that means "no
// decision could be made because the key service could not answer": the
// caller should answer 503, not 401.
var ErrUnavailable = errors.New("key service unavailable")

// ErrCursorExpired is returned by Client.Events when the key service no
// longer keeps events after the given cursor; the subscriber must start over
// from the head and treat everything it cached as suspect.
var ErrCursorExpired = errors.New("events cursor expired")

// UnavailableError is the error of a Check that could not reach a verdict.
type UnavailableError struct {
	// RetryAfter is how long the caller should tell clients to wait.
	RetryAfter time.Duration
	// Err is the underlying cause (a transport error, a StatusError, or the
	// open circuit breaker).
	Err error
}

func (e *UnavailableError) Error() string {
	return "key service unavailable: " + e.Err.Error()
}

func (e *UnavailableError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrUnavailable) true.
func (e *UnavailableError) Is(target error) bool { return target == ErrUnavailable }

// StatusError is a key-service answer with an unexpected HTTP status. Code and
// Message come from the service's error body when it had one.
type StatusError struct {
	Status  int
	Code    string
	Message string
	// RetryAfter is the answer's Retry-After in seconds, when it had one.
	RetryAfter time.Duration
}

func (e *StatusError) Error() string {
	if e.Code != "" {
		return fmt.Sprintf("key service answered HTTP %d (%s: %s)", e.Status, e.Code, e.Message)
	}
	return fmt.Sprintf("key service answered HTTP %d", e.Status)
}

// ErrThrottled is matched (errors.Is) by the error of a Check the key
// service answered with 429. It answers so only for keys that fail (unknown,
// malformed, another app's) once the app's budget of failed verifies is
// spent; good keys are always answered. So it is a refusal of this key, not
// an outage: the caller should answer 429 and count it against the client
// that sent the key.
var ErrThrottled = errors.New("key service throttled failed verifies")

// ThrottledError is the error of a Check the key service answered with 429.
type ThrottledError struct {
	// RetryAfter is how long the key service asked to wait.
	RetryAfter time.Duration
	// Err is the key service's answer (a *StatusError).
	Err error
}

func (e *ThrottledError) Error() string {
	return "key service throttled this key: " + e.Err.Error()
}

func (e *ThrottledError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrThrottled) true.
func (e *ThrottledError) Is(target error) bool { return target == ErrThrottled }

// throttled returns err as a *ThrottledError when it is a 429 answer.
func throttled(err error) *ThrottledError {
	var se *StatusError
	if !errors.As(err, &se) || se.Status != http.StatusTooManyRequests {
		return nil
	}
	return &ThrottledError{RetryAfter: max(se.RetryAfter, time.Second), Err: err}
}

// errBreakerOpen is the cause of an UnavailableError given without a call
// because the circuit breaker is open.
var errBreakerOpen = errors.New("circuit breaker open after repeated key-service failures")

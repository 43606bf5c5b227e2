package client

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
)

// Error codes the API answers with, one per status (see api/openapi.yaml).
const (
	CodeBadRequest      = "bad_request"
	CodeUnauthorized    = "unauthorized"
	CodeForbidden       = "forbidden"
	CodeNotFound        = "not_found"
	CodeConflict        = "conflict"
	CodeCursorExpired   = "cursor_expired"
	CodePayloadTooLarge = "payload_too_large"
	CodeInvalidArgument = "invalid_argument"
	CodeRateLimited     = "rate_limited"
	CodeUnavailable     = "unavailable"
)

// APIError is an error answer of the key service: its HTTP status and the
// code and message of its {"error": {...}} body. When the body is not the
// API's error shape (a proxy in the way, a wrong URL), Code is empty and
// Message is the status text.
type APIError struct {
	Status  int
	Code    string
	Message string
	// RetryAfter is the server's Retry-After on a 429 or 503, zero if none.
	RetryAfter time.Duration
}

func (e *APIError) Error() string {
	msg := oneLine(e.Message)
	if msg == "" {
		msg = "request failed"
	}
	if e.Code == "" {
		return fmt.Sprintf("%s (HTTP %d)", msg, e.Status)
	}
	return fmt.Sprintf("%s (%s, HTTP %d)", msg, oneLine(e.Code), e.Status)
}

// IsCode reports whether err is, or wraps, an APIError with the given code.
func IsCode(err error, code string) bool {
	var e *APIError
	return errors.As(err, &e) && e.Code == code
}

// IsStatus reports whether err is, or wraps, an APIError with the given status.
func IsStatus(err error, status int) bool {
	var e *APIError
	return errors.As(err, &e) && e.Status == status
}

// maxMessage bounds what a server's message can add to an error line.
const maxMessage = 300

// oneLine makes server-supplied text safe to print as part of one line: a
// message with newlines would break the CLI's one-line errors, and control
// characters from a hostile server could drive the user's terminal.
func oneLine(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == unicode.ReplacementChar {
			return ' '
		}
		return r
	}, s)
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > maxMessage {
		s = string(r[:maxMessage]) + "…"
	}
	return s
}

package keyservice

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/appkeys/appkeys/internal/store"
)

// Kind classifies an Error; the HTTP API maps each kind to one status code.
type Kind int

// The kinds of error the service reports.
const (
	KindBadRequest    Kind = iota + 1 // malformed request (400)
	KindUnauthorized                  // no or unknown credentials (401)
	KindForbidden                     // known caller, not allowed (403)
	KindNotFound                      // no such thing in the caller's organization (404)
	KindConflict                      // a name already taken (409)
	KindInvalid                       // well-formed but unacceptable values (422)
	KindRateLimited                   // too many attempts (429)
	KindUnavailable                   // the store cannot be reached (503)
	KindCursorExpired                 // the events cursor was pruned, or is past the head (410)
)

// Error is a domain error whose message is safe to show to the caller: it
// never contains a key, token or secret value.
type Error struct {
	Kind    Kind
	Message string
	Err     error // the cause, for logs; never shown to callers
	// RetryAfter, when set, tells the caller when to try again.
	RetryAfter time.Duration
}

func (e *Error) Error() string { return e.Message }
func (e *Error) Unwrap() error { return e.Err }

func errorf(kind Kind, format string, args ...any) *Error {
	return &Error{Kind: kind, Message: fmt.Sprintf(format, args...)}
}

// KindOf returns the kind of err, or 0 for an unexpected error.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return 0
}

// storeErr turns a store error into a domain error.
func (s *Service) storeErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrNotFound):
		return &Error{Kind: KindNotFound, Message: "not found", Err: err}
	case errors.Is(err, store.ErrConflict):
		return &Error{Kind: KindConflict, Message: "already exists", Err: err}
	case errors.Is(err, store.ErrCreatorGone):
		return &Error{Kind: KindUnauthorized, Message: "your user has been removed from the organization", Err: err}
	case errors.Is(err, store.ErrCursorExpired):
		return &Error{Kind: KindCursorExpired, Message: "the events cursor is older than the kept history; start again from the head", Err: err}
	case errors.Is(err, store.ErrCursorAhead):
		return &Error{Kind: KindCursorExpired, Message: "the events cursor is past the newest event (the key store went back in time); start again from the head", Err: err}
	case errors.Is(err, store.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		return &Error{Kind: KindUnavailable, Message: "the key store is unavailable; try again", Err: err}
	}
	return err
}

// notFound renders ErrNotFound with a message naming what was not found.
func (s *Service) notFound(err error, format string, args ...any) error {
	if errors.Is(err, store.ErrNotFound) {
		return &Error{Kind: KindNotFound, Message: fmt.Sprintf(format, args...), Err: err}
	}
	return s.storeErr(err)
}

// conflict renders ErrConflict with a message naming the name taken.
func (s *Service) conflict(err error, format string, args ...any) error {
	if errors.Is(err, store.ErrConflict) {
		return &Error{Kind: KindConflict, Message: fmt.Sprintf(format, args...), Err: err}
	}
	return s.storeErr(err)
}

package ledger

import (
	"errors"
	"fmt"
)

// Error codes. Every error a caller may act on carries one of these; the HTTP
// layer maps them to statuses in exactly one place.
const (
	EINVALID   = "invalid"   // the request is malformed or out of range
	ECONFLICT  = "conflict"  // the port is held by someone else
	ENOTFOUND  = "not_found" // no such allocation
	EEXHAUSTED = "exhausted" // every port of the range is taken
	EINTERNAL  = "internal"  // anything else: storage, OS
	EFORBIDDEN = "forbidden" // the caller may not do this (another user, a kernel thread's pid)
	// EUNAVAILABLE means a part the request needs is not there or has
	// stopped: a daemon without a watchdog or an event stream, a
	// subscription that was dropped or whose stream ended.
	EUNAVAILABLE = "unavailable"
)

// Error is an error with a code that callers can branch on and a message that
// is safe to show to a user.
type Error struct {
	Code    string
	Message string
}

// Error implements the error interface.
func (e *Error) Error() string {
	return e.Message
}

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code string, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, EINTERNAL for
// any other non-nil error, and "" for nil.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the user-facing message of the first *Error in err's
// chain, and "internal error" for any other error, so that storage details
// never leak to API users.
func ErrorMessage(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}

// Storage facts.
var (
	// ErrLocked means another process holds the ledger file.
	ErrLocked = errors.New("the ledger file is held by another process")
	// ErrCorrupt means the ledger file is not a readable ledger.
	ErrCorrupt = errors.New("the ledger file is corrupt")
	// ErrClosed means the log was used after Close.
	ErrClosed = errors.New("the ledger is closed")
)

package ledger

import (
	"context"

	"github.com/oklog/ulid/v2"
)

// DefaultSubscribeBuffer is how many events a subscriber may lag behind
// before it is dropped, when SubscribeRequest.Buffer is 0.
const DefaultSubscribeBuffer = 1024

// EventService hands out subscriptions to the events of the log as they
// commit. commands.Ledger implements it on the open log and httpapi.Client
// over a daemon's event stream, with the same behaviour, so a reader cannot
// tell the two apart.
type EventService interface {
	// Subscribe returns a subscription to the events after req.After (zero:
	// the events committed from now on), in log order, each once. The
	// subscription ends when ctx ends or Close is called. It returns
	// EINVALID for a bad request, and over HTTP the daemon's errors
	// (unauthorized, unavailable) before any event.
	Subscribe(ctx context.Context, req SubscribeRequest) (Subscription, error)
}

// SubscribeRequest says where a subscription starts and how far its reader
// may fall behind.
type SubscribeRequest struct {
	// After is the last event the reader has: the subscription first
	// delivers every event after it, then follows new commits. Zero: only
	// events committed from now on.
	After ulid.ULID
	// Buffer is how many events the reader may lag behind before the
	// subscription is dropped (0: DefaultSubscribeBuffer), so a slow reader
	// never slows the writer.
	Buffer int
}

// Subscription is a stream of committed events, in log order.
type Subscription interface {
	// C receives the events. It is closed when the subscription ends:
	// after Close, when the context of Subscribe ends, when the reader fell
	// behind by more than its buffer, or when the service ended it.
	C() <-chan Event
	// Err, once C is closed, says why: nil after Close, the end of the
	// context or the service's own shutdown; an error with code
	// EUNAVAILABLE when the reader fell behind (ErrDropped in process; over
	// HTTP the daemon's message, which names the last event sent) or the
	// daemon went away; otherwise what ended the stream (the past could not
	// be read).
	Err() error
	// Close ends the subscription and closes C. It may be called more than
	// once, and from any goroutine.
	Close()
}

// ErrDropped is the Err of a subscription whose reader fell behind by more
// than its buffer; the reader may subscribe again after the last event it
// saw.
var ErrDropped = &Error{Code: EUNAVAILABLE, Message: "the subscriber fell behind and was dropped"}

package commands

import (
	"context"
	"sync"

	"github.com/oklog/ulid/v2"

	"github.com/portledger/portledger/ledger"
)

// replayPage is how many past events one read takes while a subscription
// with an After catches up.
const replayPage = 1000

// subscription is the ledger.Subscription of a Ledger. The publisher offers
// it each committed event without blocking (live); a subscriber that falls
// behind by more than its buffer is dropped, so a slow reader never slows
// the writer. With an After, a goroutine first sends the past from the log
// and then forwards live, skipping what it has sent.
type subscription struct {
	l       *Ledger
	live    chan ledger.Event // offered by the publisher; closed under l.subMu
	out     <-chan ledger.Event
	from    ulid.ULID // events up to this one were committed before the subscription
	once    sync.Once
	dropped bool          // guarded by l.subMu
	done    chan struct{} // closed with live
	err     error         // why the catch-up failed; guarded by l.subMu
}

// Subscribe returns a subscription to the events after req.After (zero:
// those committed from now on); see ledger.EventService. It subscribes
// before it reads the past, and skips live events it has already sent, so
// an event committed during the catch-up is neither lost nor sent twice.
func (l *Ledger) Subscribe(ctx context.Context, req ledger.SubscribeRequest) (ledger.Subscription, error) {
	if req.Buffer < 0 {
		return nil, ledger.Errorf(ledger.EINVALID, "buffer %d: must not be negative", req.Buffer)
	}
	buffer := req.Buffer
	if buffer == 0 {
		buffer = ledger.DefaultSubscribeBuffer
	}
	c := make(chan ledger.Event, buffer)
	s := &subscription{l: l, live: c, out: c, done: make(chan struct{})}
	l.subMu.Lock()
	// Read the position under subMu, which the publisher holds while it
	// fans out: an event is then either committed before this position or
	// offered to this subscription, never both and never neither.
	l.mu.RLock()
	s.from = l.reg.Last
	l.mu.RUnlock()
	select {
	case <-l.stop:
		s.closeLocked()
	default:
		l.subs[s] = struct{}{}
	}
	l.subMu.Unlock()
	if !req.After.IsZero() {
		out := make(chan ledger.Event, buffer)
		s.out = out
		go s.replay(ctx, req.After, out)
	}
	// The context of an HTTP request ends with it, so this does not
	// outlive the subscription for long; Close is idempotent.
	context.AfterFunc(ctx, s.Close)
	return s, nil
}

// replay sends the events after after from the log, then the live ones it
// has not sent, until the subscription ends; it closes out at the end.
func (s *subscription) replay(ctx context.Context, after ulid.ULID, out chan<- ledger.Event) {
	defer close(out)
	last := after
	send := func(e ledger.Event) bool {
		if e.ID.Compare(last) <= 0 {
			return true
		}
		select {
		case out <- e:
			last = e.ID
			return true
		case <-s.done:
			return false
		}
	}
	for {
		evs, err := s.l.History(ctx, ledger.HistoryQuery{Since: last, Limit: replayPage})
		if err != nil {
			s.l.subMu.Lock()
			select {
			case <-s.done: // ended by Close or the context
			default:
				s.err = err
			}
			s.l.subMu.Unlock()
			return
		}
		sent := 0
		for _, e := range evs {
			if e.ID.Compare(last) <= 0 {
				continue
			}
			if !send(e) {
				return
			}
			sent++
		}
		if len(evs) < replayPage || sent == 0 {
			break
		}
	}
	for e := range s.live {
		if !send(e) {
			return
		}
	}
}

// C receives the events; see ledger.Subscription.
func (s *subscription) C() <-chan ledger.Event { return s.out }

// Err says why C was closed: ledger.ErrDropped when the reader fell behind,
// the error that ended the catch-up, or nil.
func (s *subscription) Err() error {
	s.l.subMu.Lock()
	defer s.l.subMu.Unlock()
	if s.dropped {
		return ledger.ErrDropped
	}
	return s.err
}

// Close ends the subscription and closes C.
func (s *subscription) Close() {
	s.l.subMu.Lock()
	defer s.l.subMu.Unlock()
	delete(s.l.subs, s)
	s.closeLocked()
}

func (s *subscription) closeLocked() {
	s.once.Do(func() {
		close(s.live)
		close(s.done)
	})
}

// publisher fans committed groups out to the subscribers, off the writer's
// path: however many subscribers there are, callers get their answers
// without waiting for them.
func (l *Ledger) publisher() {
	defer close(l.pubed)
	for events := range l.pubq {
		l.publish(events)
	}
}

// publish offers committed events to every subscriber without blocking.
func (l *Ledger) publish(events []ledger.Event) {
	l.subMu.Lock()
	defer l.subMu.Unlock()
	for s := range l.subs {
		for _, e := range events {
			if e.ID.Compare(s.from) <= 0 {
				continue
			}
			select {
			case s.live <- e:
			default:
				s.dropped = true
				s.closeLocked()
				delete(l.subs, s)
			}
			if s.dropped {
				break
			}
		}
	}
}

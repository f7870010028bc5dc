package commands

import (
	"sync"

	"github.com/oklog/ulid/v2"

	"github.com/portledger/portledger/ledger"
)

// Subscription receives every event after it was made, as it commits. A
// subscriber that falls behind by more than its buffer is dropped: C is
// closed and Dropped reports true, so a slow reader never slows the writer.
type Subscription struct {
	C <-chan ledger.Event

	c       chan ledger.Event
	from    ulid.ULID // events up to this one were committed before the subscription
	l       *Ledger
	once    sync.Once
	dropped bool // guarded by l.subMu
}

// Subscribe returns a subscription with room for buffer events.
func (l *Ledger) Subscribe(buffer int) *Subscription {
	if buffer < 1 {
		buffer = 1
	}
	c := make(chan ledger.Event, buffer)
	s := &Subscription{C: c, c: c, l: l}
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
	return s
}

// Close ends the subscription and closes C.
func (s *Subscription) Close() {
	s.l.subMu.Lock()
	defer s.l.subMu.Unlock()
	delete(s.l.subs, s)
	s.closeLocked()
}

// Dropped reports whether the writer dropped this subscription because its
// buffer was full.
func (s *Subscription) Dropped() bool {
	s.l.subMu.Lock()
	defer s.l.subMu.Unlock()
	return s.dropped
}

func (s *Subscription) closeLocked() {
	s.once.Do(func() { close(s.c) })
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
			case s.c <- e:
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

package commands

import (
	"time"

	"github.com/portledger/portledger/ledger"
)

// Observer is told what the writer does, for the daemon's metrics. Its
// methods must be quick and safe for concurrent use: Committed runs on the
// writer goroutine between a commit and the callers' answers, and
// AllocateRefused on the caller's goroutine.
type Observer interface {
	// Committed reports one commit: the events it appended, the number of
	// commands in its group (refused ones included) and how long the
	// decision and the transaction took.
	Committed(events []ledger.Event, group int, took time.Duration)
	// AllocateRefused reports an allocation that was refused, with the
	// error's code (ledger.ErrorCode).
	AllocateRefused(code string)
}

// nopObserver is the Observer of a Ledger configured without one.
type nopObserver struct{}

func (nopObserver) Committed([]ledger.Event, int, time.Duration) {}
func (nopObserver) AllocateRefused(string)                       {}

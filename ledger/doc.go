// Package ledger is the domain of portledger and its source of truth: the
// types every other package shares (Event and its payloads, Allocation,
// Health, Range, the Error with its codes, the Service and EventService
// contracts) and the append-only event log (Log) in one bbolt file. It
// imports none of the project's other packages.
//
// # The log
//
// Every change of the registry is an Event with a ULID: Append assigns it
// inside the write transaction, strictly above every ID already in the log
// even when the clock steps back (ms = max(now, last)), so the order of IDs
// is the order of time and of commits. Everything else (the live registry,
// port_registry.json, the daily JSONL logs, history, time travel) is a fold
// of the log and can be rebuilt from it. Insert, used only by an import,
// writes events of the original port manager into the past.
//
// # Its buckets
//
//	events     ULID -> encoded event (codec.go), with its hash-chain trailer
//	by_port    2-byte port + ULID: a port's history is one range scan
//	           (its newest entries are the events after the index mark,
//	           merged into by_port in batches: porttail.go)
//	snapshots  ULID of the last event folded -> the registry then, every N
//	           events: time travel folds from the nearest one
//	services   service name -> the port it held last (sticky allocation)
//	meta       the event count, the chain's head, the port index's mark,
//	           positions (SetPosition: the fleet publisher's cursor), a
//	           mark of a changed past
//
// Keys are raw ULID bytes (big-endian time first), so a cursor walks in time
// order and "events since T" is a seek. Values read in a transaction are
// decoded before it ends: bbolt's slices die with it.
//
// # Its promises
//
//   - An event Append returned is on disk (one transaction and its fsync
//     for a whole group of events) and is never changed or lost; a commit
//     is all or nothing.
//   - IDs never repeat and never go back, across restarts and clock steps.
//   - Each event commits to the one before it (chain.go): a file rewritten
//     behind the ledger's back is caught by VerifyChain.
//   - Open never waits forever for the file lock (ErrLocked), never
//     overwrites a file that is not a ledger (ErrCorrupt), and Check runs
//     bbolt's consistency check.
//   - A snapshot is only a shortcut: the same fold without it gives the
//     same registry.
package ledger

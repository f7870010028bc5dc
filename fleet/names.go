// Package fleet puts many hosts' ledgers on one NATS JetStream: the
// publisher copies this host's log onto a stream, exactly once and in log
// order, from a cursor kept in the ledger file; the live view is a
// key-value bucket of every host's allocations and a heartbeat per host; the
// Reader answers fleet-wide questions (status now or at a moment, who held a
// host's port, where a service runs, history, usage) from the stream and the
// buckets. The fleet is one more projection of each host's log and is never
// on the write path: a host keeps allocating when NATS is down.
//
// The NATS server that a team without NATS runs (`ledger hub`) is in the
// subpackage hub, so that the ledger CLI does not link it.
package fleet

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/portledger/portledger/ledger"
)

// Names on JetStream. One stream holds every host's events and snapshots;
// two key-value buckets hold the live view and the heartbeats.
const (
	// StreamName is the stream of every host's events and snapshots.
	StreamName = "PORTLEDGER"
	// EventsPrefix starts the subject of an event:
	// portledger.events.<host>.<port> (port 0 for events of no port).
	// A host's events are portledger.events.<host>.>, in log order.
	EventsPrefix = "portledger.events."
	// SnapshotsPrefix starts the subject of a host's registry snapshots:
	// portledger.snapshots.<host>.
	SnapshotsPrefix = "portledger.snapshots."
	// LiveBucket is the key-value bucket of the live view: key
	// <host>.<port>, value the allocation's JSON, deleted on release.
	LiveBucket = "PORTLEDGER_LIVE"
	// HostsBucket holds one heartbeat per host, key <host>, under the
	// bucket's TTL: a host whose key expired is unreachable.
	HostsBucket = "PORTLEDGER_HOSTS"
	// PositionName is the name of the publishing cursor in the ledger's
	// meta bucket (ledger.Log.Position).
	PositionName = "fleet"
)

// Headers of the event messages, besides Nats-Msg-Id (<host>.<ULID>).
const (
	// HeaderHost names the publishing host.
	HeaderHost = "Portledger-Host"
	// HeaderChain carries the host's hash-chain head after the event, when
	// the ledger keeps one.
	HeaderChain = "Portledger-Chain"
	// HeaderLast is, on a snapshot, the ULID of the last event folded.
	HeaderLast = "Portledger-Last"
	// HeaderLastSeq is, on a snapshot, the stream sequence of that event.
	HeaderLastSeq = "Portledger-Last-Seq"
	// HeaderSnapNum is, on a snapshot, its number among the host's
	// snapshots (1, 2, 3, ...).
	HeaderSnapNum = "Portledger-Snapshot"
	// HeaderSnapBack is, on a snapshot, where the host's earlier
	// snapshots are, newest first: for each level k = 0, 1, 2, ... the 7
	// newest earlier snapshots whose number is a multiple of 8^k, as
	// "<number>:<stream sequence>:<ULID of its last event>", comma
	// separated. A reader finds the snapshot at a moment from the host's
	// last one in a few direct gets by sequence (a skip list).
	HeaderSnapBack = "Portledger-Snapshot-Back"
	// HeaderSeqs is, on a snapshot, the stream sequences of the host's
	// events since its snapshot before: the first, then the differences,
	// comma separated ("-" for none). A reader folds from one snapshot to
	// the next by getting those messages by sequence.
	HeaderSeqs = "Portledger-Seqs"
)

// Defaults of the stream and the buckets (see StreamLimits).
const (
	DefaultMaxAge       = 400 * 24 * time.Hour // a year of history and some
	DefaultDuplicates   = 10 * time.Minute     // the de-duplication window
	DefaultHeartbeatTTL = 30 * time.Second
	DefaultHeartbeat    = 10 * time.Second
)

// ValidateHost checks a host name: 1-63 of [A-Za-z0-9_-]. A host name is one
// token of a NATS subject, where "." separates tokens and "*" and ">" are
// wildcards. It returns an EINVALID error that says why.
func ValidateHost(host string) error {
	if hostOK(host) {
		return nil
	}
	switch {
	case host == "":
		return ledger.Errorf(ledger.EINVALID, "host name is empty")
	case len(host) > 63:
		return ledger.Errorf(ledger.EINVALID, "host name %.20q... is %d bytes: at most 63", host, len(host))
	case strings.ContainsAny(host, ".*> \t"):
		return ledger.Errorf(ledger.EINVALID, "host name %q: '.', '*', '>' and spaces are NATS subject separators or wildcards; use letters, digits, '-' and '_'", host)
	}
	return ledger.Errorf(ledger.EINVALID, "host name %q: use 1-63 letters, digits, '-' and '_'", host)
}

// hostOK matches [A-Za-z0-9_-]{1,63}, without a regexp compiled at the
// start of every ledger process.
func hostOK(host string) bool {
	if len(host) < 1 || len(host) > 63 {
		return false
	}
	for i := 0; i < len(host); i++ {
		c := host[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// DefaultHost returns the host name to publish under when none is given:
// os.Hostname, which must itself be a valid host name (a dotted name such
// as "ci-7.example.com" is refused, so that two hosts never collide on a
// shortened name silently).
func DefaultHost() (string, error) {
	h, err := os.Hostname()
	if err != nil {
		return "", fmt.Errorf("host name: %w", err)
	}
	if err := ValidateHost(h); err != nil {
		return "", fmt.Errorf("%s (from os.Hostname); give one with --host or LEDGER_HOST", ledger.ErrorMessage(err))
	}
	return h, nil
}

// EventSubject is the subject of one event of host.
func EventSubject(host string, port int) string {
	return EventsPrefix + host + "." + strconv.Itoa(port)
}

// HostEvents is the subject filter of every event of host.
func HostEvents(host string) string { return EventsPrefix + host + ".>" }

// SnapshotSubject is the subject of host's snapshots.
func SnapshotSubject(host string) string { return SnapshotsPrefix + host }

// MsgID is the de-duplication ID of an event message.
func MsgID(host string, id ulid.ULID) string { return host + "." + id.String() }

// parseMsgID splits a message ID made by MsgID.
func parseMsgID(s string) (host string, id ulid.ULID, ok bool) {
	i := strings.LastIndexByte(s, '.')
	if i < 0 {
		return "", id, false
	}
	id, err := ulid.ParseStrict(s[i+1:])
	return s[:i], id, err == nil
}

// LiveKey is the live view's key of a host's port.
func LiveKey(host string, port int) string { return host + "." + strconv.Itoa(port) }

// hostOfSubject returns the host token of an event or snapshot subject.
func hostOfSubject(subj string) string {
	for _, p := range []string{EventsPrefix, SnapshotsPrefix} {
		if rest, ok := strings.CutPrefix(subj, p); ok {
			host, _, _ := strings.Cut(rest, ".")
			return host
		}
	}
	return ""
}

// ChainHeader renders a ledger's hash-chain head as the HeaderChain value,
// "<seq>:<link in hex>", when the head is the event id (the newest one
// published); ok is false otherwise.
func ChainHeader(h ledger.ChainHead, id ulid.ULID) (string, bool) {
	if h.ID != id || h.Seq == 0 {
		return "", false
	}
	return fmt.Sprintf("%d:%x", h.Seq, h.Link[:]), true
}

package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/portledger/portledger/ledger"
	"github.com/portledger/portledger/projection"
)

func runVerify(ctx context.Context, e *env, args []string) error {
	var c common
	fs := newFlags(e, "verify", "verify [--json] [--data DIR]", `
Walk the log's hash chain from its first event and name the first link that
does not hold, then compare every snapshot (the registry as of every 10,000th
event, which the daemon starts from) with the fold of the events it covers and
name the first that does not match. Every event commits to the one written before it (a SHA-256
over the previous link, the event's position, its ID and its bytes), so an
event deleted, changed or moved in the file with a bbolt tool breaks a link
here. It proves the log is the one its chain head describes: an attacker
who rewrites the whole file and its chain head together is caught only by a
copy of the head kept elsewhere (the fleet).

Through the daemon when one runs, else on the file. Exit status 0 when the
chain holds (breaks accepted with 'ledger serve --accept-broken-chain' are
listed), 1 when it does not. --json prints the report.`, &c, true)
	if err := parse(e, fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("verify takes no arguments, got %q", fs.Args())
	}
	c.reads = true
	b, err := connect(ctx, &c)
	if err != nil {
		return err
	}
	rep, err := b.verify(ctx)
	if err = closeWith(b, err); err != nil {
		return err
	}
	if c.json {
		if err := printJSON(e.stdout, rep); err != nil {
			return err
		}
	} else {
		printChainReport(e.stdout, rep)
	}
	if !rep.OK() {
		msg := ""
		switch {
		case c.json:
		case rep.Break != nil:
			msg = "the hash chain is broken: " + describeBreak(*rep.Break)
		default:
			msg = "a snapshot does not match the events: " + describeSnapshotBreak(*rep.Snapshot)
		}
		return exitError{code: 1, msg: msg}
	}
	return nil
}

// verifyLog walks the chain and, when it holds, checks the snapshots
// against the events.
func verifyLog(log *ledger.Log) (ledger.ChainReport, error) {
	rep, err := log.VerifyChain()
	if err != nil || rep.Break != nil {
		return rep, err
	}
	rep.SnapshotsChecked, rep.Snapshot, err = projection.CheckSnapshots(log, rep.Accepted)
	return rep, err
}

// logVerifier is the daemon's answer to GET /api/ports/verify: verifyLog.
type logVerifier struct{ log *ledger.Log }

func (v logVerifier) VerifyChain() (ledger.ChainReport, error) { return verifyLog(v.log) }

// describeSnapshotBreak says which snapshot disagrees with the events, in
// one line.
func describeSnapshotBreak(b ledger.SnapshotBreak) string {
	return fmt.Sprintf("the snapshot at event %s: %s", b.ID, b.Problem)
}

// describeBreak says where a chain breaks, in one line.
func describeBreak(b ledger.ChainBreak) string {
	if b.EventID == (ledger.ChainHead{}).ID {
		return fmt.Sprintf("at link %d: %s", b.Seq, b.Problem)
	}
	return fmt.Sprintf("at link %d, event %s: %s", b.Seq, b.EventID, b.Problem)
}

func printChainReport(w io.Writer, rep ledger.ChainReport) {
	for _, a := range rep.Accepted {
		fmt.Fprintf(w, "accepted break (ledger serve --accept-broken-chain) %s\n", describeBreak(a))
	}
	if rep.Break != nil {
		fmt.Fprintf(w, "BROKEN %s\n", describeBreak(*rep.Break))
		fmt.Fprintf(w, "checked %d links before it; the chain head in meta is link %d (%s)\n", rep.Checked, rep.Head.Seq, rep.Head.Link)
		return
	}
	fmt.Fprintf(w, "chain holds: %d links checked", rep.Checked)
	if rep.Unchained > 0 {
		fmt.Fprintf(w, " (the first %d, written before the chain, against its base)", rep.Unchained)
	}
	fmt.Fprintf(w, "\nchain head: link %d, %s (event %s)\n", rep.Head.Seq, rep.Head.Link, rep.Head.ID)
	if rep.Snapshot != nil {
		fmt.Fprintf(w, "BROKEN %s\n", describeSnapshotBreak(*rep.Snapshot))
		fmt.Fprintf(w, "the events hold, but the snapshot was changed outside the ledger, and a daemon that starts from it shows what it says: keep a copy of the file as evidence and restore a backup (ledger restore)\n")
		return
	}
	if rep.SnapshotsChecked > 0 {
		fmt.Fprintf(w, "snapshots match the events: %d checked\n", rep.SnapshotsChecked)
	}
}

// checkChainAtStart checks the chain from the newest snapshot before the
// daemon serves. A broken chain stops the start unless accept is set; then
// every break is accepted, recorded as a chain_accepted event, and logged.
func checkChainAtStart(log *ledger.Log, accept bool, logger *slog.Logger) error {
	rep, err := log.VerifyChainSinceSnapshot()
	if err != nil {
		return fmt.Errorf("check the hash chain: %w", err)
	}
	for _, a := range rep.Accepted {
		logger.Warn("the hash chain has an accepted break", "link", a.Seq, "event", a.EventID, "problem", a.Problem)
	}
	if rep.OK() {
		return nil
	}
	if !accept {
		return fmt.Errorf("the log's hash chain is broken %s: the file was changed outside the ledger; run `ledger verify` for the first broken link, keep a copy of %s as evidence, and start with --accept-broken-chain to serve it anyway (recorded as an event)",
			describeBreak(*rep.Break), log.Path())
	}
	full, ev, err := log.AcceptBrokenChain(fmt.Sprintf("uid %d pid %d", os.Getuid(), os.Getpid()))
	if err != nil {
		return err
	}
	logger.Warn("serving a log whose hash chain is broken (--accept-broken-chain)", "breaks", len(full.Breaks), "first", describeBreak(*rep.Break), "event", ev.ID)
	return nil
}

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/portledger/portledger/ledger"
	"github.com/portledger/portledger/projection"
)

func runReplay(ctx context.Context, e *env, args []string) error {
	var c common
	var verify bool
	fs := newFlags(e, "replay", "replay [--verify]", `
Rebuild port_registry.json and the daily JSONL logs from the event log, byte
for byte. The event log is never changed. With --verify, first compare the
files in place with what the log gives and report the first differing line
of each file that differs; then rebuild them. --verify exits 1 when a file
differed.

Replay opens the ledger file itself: stop 'ledger serve' first (the daemon
catches the files up by itself when it starts).`, &c, false)
	fs.BoolVar(&verify, "verify", false, "report which files differed from the log, and where")
	if err := parse(e, fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("replay takes no arguments, got %q", fs.Args())
	}
	layout := ledger.Layout{Dir: c.data}
	log, err := ledger.Open(layout.DB(), ledger.Options{Timeout: time.Second, ReadAhead: true})
	if errors.Is(err, ledger.ErrLocked) {
		return fmt.Errorf("the ledger %s is held by another process (is `ledger serve` running? stop it first; it catches the files up when it starts)", layout.DB())
	}
	if err != nil {
		return err
	}
	defer log.Close()

	progress := progressBar(e.stderr)
	if verify {
		rep, err := log.VerifyChain()
		if err != nil {
			return err
		}
		if !rep.OK() {
			printChainReport(e.stdout, rep)
			return exitError{code: 1, msg: "the log's hash chain is broken " + describeBreak(*rep.Break) + "; nothing was rebuilt"}
		}
		res, err := projection.Replay(layout, log, projection.ReplayOptions{Verify: true, Progress: progress})
		if err != nil {
			return err
		}
		if res.Matched {
			fmt.Fprintf(e.stdout, "verified %d events: %d files match the log\n", res.Events, len(res.Files))
			return nil
		}
		for _, d := range res.Diffs {
			switch d.Line {
			case 0:
				fmt.Fprintf(e.stdout, "%s: missing on one side\n", d.File)
			default:
				fmt.Fprintf(e.stdout, "%s:%d differs\n  log gives: %s\n  file has:  %s\n", d.File, d.Line, safe(d.Want), safe(d.Got))
			}
		}
		kept, err := projection.KeepAside(res.Diffs, time.Now())
		for _, k := range kept {
			fmt.Fprintf(e.stdout, "kept aside: %s\n", k)
		}
		if err != nil {
			return fmt.Errorf("%w; nothing was rebuilt", err)
		}
	}
	res, err := projection.Replay(layout, log, projection.ReplayOptions{Progress: progress})
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "replayed %d events into %d files under %s\n", res.Events, len(res.Files), c.data)
	if verify {
		return exitError{code: 1, msg: "the files differed from the log; they are rebuilt now"}
	}
	return nil
}

// progressBar returns a progress callback that draws on w when w is a
// terminal and the work has run for more than a second; nil otherwise.
func progressBar(w io.Writer) func(done, total uint64) {
	f, ok := w.(*os.File)
	if !ok {
		return nil
	}
	if fi, err := f.Stat(); err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return nil
	}
	start := time.Now()
	drawn := false
	return func(done, total uint64) {
		if time.Since(start) < time.Second && !drawn {
			return
		}
		drawn = true
		pct := 100.0
		if total > 0 {
			pct = float64(done) * 100 / float64(total)
		}
		const width = 30
		n := int(pct / 100 * width)
		bar := make([]byte, width)
		for i := range bar {
			bar[i] = ' '
			if i < n {
				bar[i] = '#'
			}
		}
		fmt.Fprintf(f, "\rreplay [%s] %5.1f%% %d/%d events", bar, pct, done, total)
		if done >= total {
			fmt.Fprintln(f)
		}
	}
}

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/portledger/portledger/httpapi"
	"github.com/portledger/portledger/ledger"
)

func runCompact(ctx context.Context, e *env, args []string) error {
	var c common
	var keep bool
	fs := newFlags(e, "compact", "compact [--keep] [--json]", `
Give back the disk space the ledger file keeps for itself. bbolt never
shrinks a file: pages freed inside it (every 4,096 events the port index
takes in its newest entries, rewriting the pages it adds them to, which frees
the old ones) are reused but not returned. compact copies the log into a fresh file with full pages, compares
the copy key by key and value by value with the original, and puts it in
place; no event, index entry, snapshot or answer changes.

It is an offline step: stop 'ledger serve' first. compact holds the file's
lock while it works, so other ledger commands wait for it (or time out)
rather than write to the old file. With --keep the original is left beside
the new file as ledger.db.before-compact-<time>.`, &c, true)
	fs.BoolVar(&keep, "keep", false, "keep the original file beside the compacted one")
	if err := parse(e, fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("compact takes no arguments, got %q", fs.Args())
	}
	layout := ledger.Layout{Dir: c.data}
	if _, err := os.Stat(layout.Socket()); err == nil {
		if httpapi.NewSocketClient(layout.Socket(), c.token).Ping(ctx) == nil {
			return fmt.Errorf("a daemon serves %s: compact is an offline step; stop 'ledger serve' first", c.data)
		}
	}
	if _, err := os.Stat(layout.DB()); err != nil {
		return fmt.Errorf("no ledger to compact: %w", err)
	}
	var keepPath string
	if keep {
		keepPath = layout.DB() + ".before-compact-" + time.Now().UTC().Format("20060102T150405Z")
	}
	res, err := ledger.Compact(layout.DB(), time.Second, keepPath)
	if errors.Is(err, ledger.ErrLocked) {
		return fmt.Errorf("the ledger %s is held by another process (is 'ledger serve' running? compact is an offline step: stop it first)", layout.DB())
	}
	if err != nil {
		return err
	}
	if c.json {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	fmt.Fprintf(e.stdout, "compacted %s: %s -> %s (%d keys copied and checked)\n",
		res.Path, byteSize(res.BytesBefore), byteSize(res.BytesAfter), res.Keys)
	if res.Kept != "" {
		fmt.Fprintf(e.stdout, "the original is kept as %s\n", res.Kept)
	}
	return nil
}

// byteSize writes n bytes for people: 1.2 GB, 34.0 MB, 812 KB, 512 B.
func byteSize(n int64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.1f GB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.0f KB", float64(n)/1e3)
	}
	return fmt.Sprintf("%d B", n)
}

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/portledger/portledger/ledger"
	"github.com/portledger/portledger/projection"
)

func runRestore(ctx context.Context, e *env, args []string) error {
	var c common
	var force bool
	fset := newFlags(e, "restore", "restore FILE [--data DIR] [--force]", `
Put a copy made by 'ledger backup' back as the ledger of a data directory
that no daemon serves (a stopped one, or a new one). The copy is checked
first (bbolt's consistency check, the events in order, the hash chain); a
copy that does not hold is refused and nothing changes. A ledger that a
daemon serves, or another process holds, is never overwritten. An existing
stopped ledger is replaced only with --force, and kept beside it as
ledger.db.before-restore-TIME. The projection files (port_registry.json,
the JSONL logs) are then rebuilt from the restored log.`, &c, false)
	fset.BoolVar(&force, "force", false, "replace the stopped ledger of the data directory (it is kept aside)")
	pos, err := parseInterleaved(e, fset, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("restore takes one FILE made by 'ledger backup'")
	}
	src := pos[0]
	sum, err := checkCopy(src)
	if err != nil {
		return fmt.Errorf("restore: %s is not a sound ledger copy, nothing changed: %w", src, err)
	}
	layout := ledger.Layout{Dir: c.data}
	if cl, err := socketClient(ctx, layout, c.token); cl != nil || err != nil {
		return fmt.Errorf("restore: a daemon serves %s: stop it first ('ledger restore' never overwrites a live ledger)", c.data)
	}
	dst := layout.DB()
	var aside string
	switch _, err := os.Stat(dst); {
	case err == nil:
		// Take the lock to be sure no process holds the file.
		log, err := ledger.Open(dst, ledger.Options{ReadOnly: true, Timeout: 200 * time.Millisecond})
		if errors.Is(err, ledger.ErrLocked) {
			return fmt.Errorf("restore: the ledger %s is held by another process: stop it first", dst)
		}
		if err == nil {
			log.Close()
		}
		if !force {
			return usagef("restore: %s has a ledger already; pass --force to replace it (it is kept aside), or restore into a new --data directory", c.data)
		}
		aside = dst + ".before-restore-" + time.Now().UTC().Format("20060102T150405Z")
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("restore: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	tmp := dst + ".restoring"
	if err := copyFile(src, tmp); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("restore: %w", err)
	}
	if aside != "" {
		if err := os.Rename(dst, aside); err != nil {
			os.Remove(tmp)
			return fmt.Errorf("restore: keep the old ledger aside: %w", err)
		}
	}
	if err := os.Rename(tmp, dst); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	syncDir(filepath.Dir(dst))
	fmt.Fprintf(e.stdout, "restored %s into %s\n", sum, dst)
	if aside != "" {
		fmt.Fprintf(e.stdout, "the ledger it replaced is kept as %s\n", aside)
	}
	log, err := ledger.Open(dst, ledger.Options{Timeout: time.Second})
	if err != nil {
		return fmt.Errorf("restore: open the restored ledger: %w", err)
	}
	defer log.Close()
	res, err := projection.Replay(layout, log, projection.ReplayOptions{})
	if err != nil {
		return fmt.Errorf("restore: rebuild the projection files (run 'ledger replay'): %w", err)
	}
	fmt.Fprintf(e.stdout, "rebuilt %d files from %d events\n", len(res.Files), res.Events)
	return nil
}

// copyFile copies src to a new file dst (mode 0600) and syncs it.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/portledger/portledger/ledger"
)

func runBackup(ctx context.Context, e *env, args []string) error {
	var c common
	var force bool
	fset := newFlags(e, "backup", "backup FILE [--force]", `
Write a consistent copy of the ledger file to FILE while the daemon goes on
serving: one read transaction of the log (through the daemon's GET
/api/backup when one runs, else in this process), so the copy holds every
event committed before it began. The copy is checked (bbolt's consistency
check, the events, the hash chain) before it takes FILE's name. An existing
FILE is refused unless --force. 'ledger restore FILE' puts it back.`, &c, false)
	fset.BoolVar(&force, "force", false, "replace FILE if it exists")
	pos, err := parseInterleaved(e, fset, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("backup takes one FILE, e.g. ledger backup ledger-$(date +%%F).db")
	}
	dst := pos[0]
	if _, err := os.Stat(dst); err == nil && !force {
		return usagef("backup: %s exists; choose another name or pass --force", dst)
	}
	tmp := dst + ".partial"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	defer os.Remove(tmp) // gone after the rename; left only by a failure
	b, err := connect(ctx, &c)
	if err != nil {
		f.Close()
		return err
	}
	if b.client != nil {
		_, err = b.client.Backup(ctx, f)
	} else {
		_, err = b.log.Backup(f, nil)
	}
	if err = closeWith(b, err); err != nil {
		f.Close()
		return fmt.Errorf("backup: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("backup: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	sum, err := checkCopy(tmp)
	if err != nil {
		return fmt.Errorf("backup: the copy does not hold: %w", err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	syncDir(filepath.Dir(dst))
	fmt.Fprintf(e.stdout, "backed up %s to %s\n", sum, dst)
	return nil
}

// copySummary is what checkCopy found in a ledger file.
type copySummary struct {
	Events uint64
	Last   ulid.ULID
	Size   int64
	Chain  uint64 // links checked
}

func (s copySummary) String() string {
	last := "none"
	if !s.Last.IsZero() {
		last = fmt.Sprintf("%s at %s", s.Last, ledger.FormatTime(ulid.Time(s.Last.Time())))
	}
	return fmt.Sprintf("%d events (last %s, %d bytes, hash chain of %d links holds)", s.Events, last, s.Size, s.Chain)
}

// checkCopy opens a ledger file read-only and checks it: bbolt's
// consistency check, every event readable in order, the hash chain whole.
func checkCopy(path string) (copySummary, error) {
	var sum copySummary
	fi, err := os.Stat(path)
	if err != nil {
		return sum, err
	}
	sum.Size = fi.Size()
	log, err := ledger.Open(path, ledger.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return sum, err
	}
	defer log.Close()
	if err := log.Check(); err != nil {
		return sum, err
	}
	var prev ulid.ULID
	err = log.Scan(ulid.Zero, ulid.Zero, func(ev ledger.Event) error {
		if ev.ID.Compare(prev) <= 0 {
			return fmt.Errorf("event %s is out of order after %s", ev.ID, prev)
		}
		prev = ev.ID
		sum.Events++
		return nil
	})
	if err != nil {
		return sum, err
	}
	sum.Last = prev
	rep, err := log.VerifyChain()
	if err != nil {
		return sum, err
	}
	if !rep.OK() {
		return sum, fmt.Errorf("the hash chain is broken %s", describeBreak(*rep.Break))
	}
	sum.Chain = rep.Checked
	return sum, nil
}

// syncDir makes a rename in dir durable; where the OS will not, the rename
// is still done.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}

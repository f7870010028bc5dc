package main

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/portledger/portledger/ledger"
)

// checkDataDir refuses a data directory that another user owns or that
// group or others may write: whoever can write it can put a socket of
// their own where the CLI looks for the daemon, or links where the daemon
// writes. The directories the ledger keeps inside it are held to the same
// rules, and none may be a symbolic link, so that a link left there while
// the directory was open to others cannot send the daemon's files
// elsewhere. A directory that does not exist yet is fine: it is made 0700.
func checkDataDir(dir string) error {
	if err := checkDirItself(dir); err != nil {
		return err
	}
	for _, sub := range dataSubdirs {
		p := filepath.Join(dir, sub)
		fi, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("data directory: %w", err)
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			return fmt.Errorf("%s is a symbolic link: the ledger's directories are never followed through links; remove it (and see what it pointed to)", p)
		}
		if err := checkDirItself(p); err != nil {
			return err
		}
	}
	return nil
}

// dataSubdirs are the directories the ledger keeps in its data directory,
// parents first.
var dataSubdirs = []string{
	"databases",
	filepath.Join("databases", "port_ledger"),
	filepath.Join("databases", "port_registry"),
	"logs",
	filepath.Join("logs", "port_manager"),
}

// checkDirItself applies checkDataDir's owner and mode rules to one
// directory.
func checkDirItself(dir string) error {
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("data directory %s is not a directory", dir)
	}
	if uid, ok := fileUID(fi); ok && uid != os.Getuid() {
		return fmt.Errorf("data directory %s is owned by uid %d, not by you (uid %d): use a directory of your own (--data or LEDGER_DATA), or `chown %d %s`",
			dir, uid, os.Getuid(), os.Getuid(), dir)
	}
	if perm := fi.Mode().Perm(); permBits && perm&0o022 != 0 {
		return fmt.Errorf("data directory %s may be written by other users (mode %04o): `chmod 700 %s` (or `chmod go-w %s`)", dir, perm, dir, dir)
	}
	return nil
}

// readToken reads the daemon's token file, refusing one that is a link,
// not this user's, or readable by others.
func readToken(path string) (string, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|oNoFollow, 0)
	if err != nil {
		return "", err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("token file %s is not a regular file", path)
	}
	if uid, ok := fileUID(fi); ok && uid != os.Getuid() {
		return "", fmt.Errorf("token file %s is owned by uid %d, not by you (uid %d)", path, uid, os.Getuid())
	}
	if perm := fi.Mode().Perm(); permBits && perm&0o077 != 0 {
		return "", fmt.Errorf("token file %s may be read by other users (mode %04o): `chmod 600 %s`", path, perm, path)
	}
	b, err := io.ReadAll(io.LimitReader(f, 4096))
	if err != nil {
		return "", err
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("token file %s is empty: delete it and restart `ledger serve` to make a new one", path)
	}
	return tok, nil
}

// daemonToken returns the token the daemon serves TCP with: the one given
// (--token or LEDGER_TOKEN), else the data directory's token file, made
// with a new random token (mode 0600) at the first start.
func daemonToken(layout ledger.Layout, given string) (string, error) {
	if given != "" {
		return given, nil
	}
	tok, err := readToken(layout.Token())
	if !errors.Is(err, fs.ErrNotExist) {
		return tok, err
	}
	tok = rand.Text()
	f, err := os.OpenFile(layout.Token(), os.O_WRONLY|os.O_CREATE|os.O_EXCL|oNoFollow, 0o600)
	if err != nil {
		return "", fmt.Errorf("token: %w", err)
	}
	if _, err := f.WriteString(tok + "\n"); err != nil {
		f.Close()
		os.Remove(layout.Token())
		return "", fmt.Errorf("token: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return "", fmt.Errorf("token: %w", err)
	}
	return tok, f.Close()
}

// clientToken returns the token the CLI sends over TCP: --token or
// LEDGER_TOKEN, else the one in the data directory, if there is one this
// user may trust.
func clientToken(c *common) (string, error) {
	if c.token != "" {
		return c.token, nil
	}
	tok, err := readToken(ledger.Layout{Dir: c.data}.Token())
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	return tok, err
}

// absToken is the token file's path for messages.
func absToken(layout ledger.Layout) string {
	if p, err := filepath.Abs(layout.Token()); err == nil {
		return p
	}
	return layout.Token()
}

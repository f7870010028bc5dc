package main

import (
	"time"

	"encoding/json"
	"github.com/oklog/ulid/v2"
	"io"

	"github.com/portledger/portledger/ledger"
)

// printJSON writes v as indented JSON.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// parsePort reads a port argument.
func parsePort(s string) (int, error) {
	p, err := ledger.ParsePort(s)
	if err != nil {
		return 0, usageError{msg: ledger.ErrorMessage(err)}
	}
	return p, nil
}

// parseWindow reads --since and --until: the first and last moment of a
// window, each optional (the zero ULID leaves that side open).
func parseWindow(since, until string) (from, to ulid.ULID, err error) {
	now := time.Now()
	if from, err = ledger.ParseSince(since, now); err != nil {
		return from, to, usagef("--since: %s", ledger.ErrorMessage(err))
	}
	if to, err = ledger.ParsePoint(until, now); err != nil {
		return from, to, usagef("--until: %s", ledger.ErrorMessage(err))
	}
	return from, to, nil
}

// closeWith closes b and returns the first error.
func closeWith(b *backend, err error) error {
	if cerr := b.Close(); err == nil {
		err = cerr
	}
	return err
}

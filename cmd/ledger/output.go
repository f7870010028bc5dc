package main

import (
	"encoding/json"
	"io"
	"strconv"

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
	p, err := strconv.Atoi(s)
	if err != nil || p < 1 || p > 65535 {
		return 0, usagef("port %q: want a number 1-65535", s)
	}
	return p, nil
}

// closeWith closes b and returns the first error.
func closeWith(b *backend, err error) error {
	if cerr := b.Close(); err == nil {
		err = cerr
	}
	return err
}

var _ = ledger.FormatTime

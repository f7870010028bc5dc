package main

import (
	"context"
	"fmt"
	"runtime"
)

func runVersion(ctx context.Context, e *env, args []string) error {
	var c common
	fs := newFlags(e, "version", "version", "Print the version of ledger.", &c, false)
	if err := parse(e, fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("version takes no arguments, got %q", fs.Args())
	}
	_, err := fmt.Fprintf(e.stdout, "ledger %s (%s)\n", Version, runtime.Version())
	return err
}

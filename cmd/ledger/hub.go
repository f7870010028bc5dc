package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
)

// hubBinary is the program that `ledger hub` runs: the NATS server lives in
// a binary of its own, so that linking it does not slow every CLI call.
const hubBinary = "ledger-hub"

func runHub(ctx context.Context, e *env, args []string) error {
	path, err := findHub()
	if err != nil {
		for _, a := range args {
			if a == "-h" || a == "--help" || a == "-help" {
				fmt.Fprint(e.stdout, hubHelp)
				return nil
			}
		}
		return err
	}
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = e.stdin, e.stdout, e.stderr
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	err = cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return exitError{code: ee.ExitCode()} // ledger-hub printed why
	}
	return err
}

const hubHelp = `Usage: ledger hub --data DIR [--listen 127.0.0.1:4222] [--cluster HOST:6222 --routes nats://OTHER:6222,...]

Run the fleet's NATS server with JetStream, its store under --data, and
create the fleet's stream and buckets. It is the program ledger-hub, which
is not installed here: install it next to ledger with
    go install ./cmd/ledger-hub
and run 'ledger hub --help' again for all its flags (-data, -listen,
-cluster, -routes, -user, -pass, -token, -tls-cert, -tls-key, -tls-ca,
-config, -replicas, -max-age, -max-bytes, -dedup-window, -heartbeat-ttl).
`

// findHub looks for ledger-hub next to the running ledger, then on PATH.
func findHub() (string, error) {
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), hubBinary)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	if p, err := exec.LookPath(hubBinary); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("%s is not installed next to ledger nor on PATH: install it with `go install ./cmd/ledger-hub` (from the portledger source) or `go install github.com/portledger/portledger/cmd/ledger-hub@latest`", hubBinary)
}

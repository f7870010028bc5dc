// Package crashtest tries to break the ledger's promises with the real
// `ledger` binary: daemons killed with SIGKILL or stopped with SIGTERM while
// 16 HTTP clients allocate and release, and 50 CLI processes at once, half
// through a daemon and half opening the file themselves, with the daemon
// stopped halfway. After each run the bbolt file is checked and folded, and
// the test asserts that
//
//   - every allocation and release answered with a 2xx is in the log;
//   - the log holds nothing that no client asked for;
//   - no port ever has two live holders;
//   - the bbolt file passes its consistency check;
//   - port_registry.json and the JSONL logs equal what `ledger replay` gives.
//
// The package has only tests. By default each crash scenario runs 3
// kill/restart rounds (2 with -short), which keeps the package well under a
// minute. Set CRASHTEST_ROUNDS for a longer run:
//
//	CRASHTEST_ROUNDS=25 go test -run Crash -v ./internal/crashtest/
//
// The tests hand out ports from 44000-44999 and listen on loopback only.
package crashtest

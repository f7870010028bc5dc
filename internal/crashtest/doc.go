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
// A clean stop (SIGTERM) must also answer every request that was in flight,
// exit 0 and remove its socket; no CLI process may hang past 10 s.
//
// The package has only tests. By default each crash scenario runs 3
// stop/restart rounds (2 with -short) and the contention scenario runs once,
// which keeps the package at a few seconds. CRASHTEST_ROUNDS sets the number
// of crash rounds and of contention repetitions, each on a fresh data
// directory:
//
//	CRASHTEST_ROUNDS=25 go test -count=1 -run 'Crash|Contention' -v ./internal/crashtest/
//
// -count=1 matters: the tests build the binary themselves, so the go test
// cache does not see changes to the code they run.
//
// The tests hand out ports from 29000-29999 and listen on loopback only.
package crashtest

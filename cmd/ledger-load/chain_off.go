//go:build ledgerbench

package main

import (
	"flag"

	"github.com/portledger/portledger/ledger"
)

// registerChainFlag adds --no-chain, which exists only in builds with the
// ledgerbench tag: the in-process daemon then appends without the hash
// chain, to price the chain against the same run.
//
//	go run -tags ledgerbench ./cmd/ledger-load --clients 16 --no-chain
func registerChainFlag(fs *flag.FlagSet) *bool {
	return fs.Bool("no-chain", false, "append without the hash chain (ledgerbench builds only, to price the chain)")
}

func disableChain(l *ledger.Log) { ledger.DisableChainForBenchmark(l) }

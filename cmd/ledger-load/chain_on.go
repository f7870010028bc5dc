//go:build !ledgerbench

package main

import (
	"flag"

	"github.com/portledger/portledger/ledger"
)

// registerChainFlag adds nothing: the hash chain is always on, except in
// ledgerbench builds (chain_off.go).
func registerChainFlag(*flag.FlagSet) *bool { return new(bool) }

func disableChain(*ledger.Log) {}

//go:build ledgerbench

package ledger

// DisableChainForBenchmark makes l append events without the hash chain,
// so that a benchmark can price the chain against the same code without
// it, in the same run. It exists only in builds with the ledgerbench tag:
//
//	go test -tags ledgerbench -run '^$' -bench ChainCost ./ledger/ ./commands/
func DisableChainForBenchmark(l *Log) { l.noChain = true }

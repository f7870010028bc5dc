//go:build !linux

package ledger

// readAhead does nothing where the kernel takes no read-ahead advice
// (Options.ReadAhead).
func readAhead(string) {}

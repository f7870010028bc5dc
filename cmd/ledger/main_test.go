package main

import (
	"os"
	"testing"

	"github.com/portledger/portledger/internal/testbin"
)

// bins builds the real binaries of the end-to-end and `ledger run` tests,
// once for all of them.
var bins testbin.Binaries

func TestMain(m *testing.M) {
	code := m.Run()
	_ = bins.Remove()
	os.Exit(code)
}

package fleet_test

import (
	"os"
	"testing"

	"github.com/portledger/portledger/internal/testbin"
)

// bins builds the ledger and ledger-hub binaries of the tests that run them.
var bins testbin.Binaries

func TestMain(m *testing.M) {
	code := m.Run()
	_ = bins.Remove()
	os.Exit(code)
}

package main

import (
	"flag"

	"github.com/portledger/portledger/commands"
	"github.com/portledger/portledger/ledger"
)

// allowEphemeralFlag adds --allow-ephemeral to the flags of a subcommand
// that sets the managed range.
func allowEphemeralFlag(e *env, fs *flag.FlagSet) *bool {
	return fs.Bool("allow-ephemeral", e.getenv("LEDGER_ALLOW_EPHEMERAL") == "1",
		"let the range overlap the kernel's ephemeral ports (env LEDGER_ALLOW_EPHEMERAL=1)")
}

// checkNewRange refuses a range that overlaps the kernel's ephemeral ports
// unless allow is set: the kernel may hand such a port to an outgoing
// connection before its service binds it. The refusal is a usage error
// that explains the two ways out.
func checkNewRange(what string, r ledger.Range, allow bool) error {
	if allow {
		return nil
	}
	if err := commands.CheckEphemeral(r); err != nil {
		return usagef("%s: %s", what, ledger.ErrorMessage(err))
	}
	return nil
}

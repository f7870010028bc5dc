// Package flagdoc prints a flag.FlagSet's flags as portledger's docs spell
// them: --name TYPE, then what the flag does and its default when that is
// not the zero value. The ledger and ledger-hub programs share it, so every
// --help reads alike.
package flagdoc

import (
	"flag"
	"fmt"
	"io"
	"strings"
)

// Print writes fs's flags to w, in name order.
func Print(w io.Writer, fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		typ, usage := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if typ != "" {
			line += " " + typ
		}
		fmt.Fprintf(w, "%s\n    \t%s", line, strings.ReplaceAll(usage, "\n", "\n    \t"))
		switch f.DefValue {
		case "", "0", "false", "0s", "[]":
		default:
			if fmt.Sprintf("%T", f.Value) == "*flag.stringValue" {
				fmt.Fprintf(w, " (default %q)", f.DefValue)
			} else {
				fmt.Fprintf(w, " (default %s)", f.DefValue)
			}
		}
		fmt.Fprintln(w)
	})
}

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/oklog/ulid/v2"

	"github.com/portledger/portledger/ledger"
)

// printJSON writes v as indented JSON.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// parsePort reads a port argument.
func parsePort(s string) (int, error) {
	p, err := ledger.ParsePort(s)
	if err != nil {
		return 0, usageError{msg: ledger.ErrorMessage(err)}
	}
	return p, nil
}

// parseWindow reads --since and --until: the first and last moment of a
// window, each optional (the zero ULID leaves that side open).
func parseWindow(since, until string) (from, to ulid.ULID, err error) {
	now := time.Now()
	if from, err = ledger.ParseSince(since, now); err != nil {
		return from, to, usagef("--since: %s", ledger.ErrorMessage(err))
	}
	if to, err = ledger.ParsePoint(until, now); err != nil {
		return from, to, usagef("--until: %s", ledger.ErrorMessage(err))
	}
	return from, to, nil
}

// closeWith closes b and returns the first error.
func closeWith(b *backend, err error) error {
	if cerr := b.Close(); err == nil {
		err = cerr
	}
	return err
}

// maxShown bounds how many characters of one string reach the terminal.
const maxShown = 200

// safe makes a string from the log fit for a terminal: every rune that is
// not printable (control characters such as ESC, which start terminal
// escape sequences, newlines, invalid UTF-8, and Unicode format characters
// such as U+202E RIGHT-TO-LEFT OVERRIDE, which reorder what is shown) is
// written as a Go escape (\x1b, \n, \u202e), and a string longer than
// maxShown characters is cut with a note of what was left out. Every
// human-readable output of the CLI passes strings that came from outside
// through it; --json output is JSON's own escaping.
func safe(s string) string { return escapeN(s, maxShown) }

// maxErrorShown bounds an error message: it may quote a string from the
// request or the log, but explains more than a field does.
const maxErrorShown = 1000

// escapeN is safe with a bound of max characters.
func escapeN(s string, max int) string {
	if len(s) <= max && printableString(s) {
		return s
	}
	var b strings.Builder
	n := 0
	for i, r := range s {
		if n == max {
			fmt.Fprintf(&b, "…(%d more bytes)", len(s)-i)
			break
		}
		n++
		switch {
		case r == utf8.RuneError && !strings.HasPrefix(s[i:], string(utf8.RuneError)):
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case printable(r):
			b.WriteRune(r)
		default:
			q := strconv.QuoteRuneToASCII(r)
			b.WriteString(q[1 : len(q)-1])
		}
	}
	return b.String()
}

// printable reports whether r may be written to a terminal as it is.
func printable(r rune) bool {
	return unicode.IsPrint(r) && !unicode.In(r, unicode.Cf)
}

func printableString(s string) bool {
	for i, r := range s {
		if !printable(r) || (r == utf8.RuneError && !strings.HasPrefix(s[i:], string(utf8.RuneError))) {
			return false
		}
	}
	return true
}

// human renders a duration for people: the two largest units, such as
// "382d 9h", "3h 5m", "4m 10s", "12s" ("0s" under a second). JSON keeps
// seconds.
func human(d time.Duration) string {
	if d < 0 {
		return "-" + human(-d)
	}
	d = d.Round(time.Second)
	day := 24 * time.Hour
	switch {
	case d >= day:
		return fmt.Sprintf("%dd %dh", d/day, (d%day)/time.Hour)
	case d >= time.Hour:
		return fmt.Sprintf("%dh %dm", d/time.Hour, (d%time.Hour)/time.Minute)
	case d >= time.Minute:
		return fmt.Sprintf("%dm %ds", d/time.Minute, (d%time.Minute)/time.Second)
	}
	return fmt.Sprintf("%ds", d/time.Second)
}

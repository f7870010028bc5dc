package ledger_test

import (
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/portledger/portledger/ledger"
)

// FuzzParseTime feeds ParseTime what users may type after --at, ?at=,
// --since and --until. It must never panic; a time it accepts is never after
// now and reads back to the same instant when written as RFC 3339; an event
// ULID it accepts is that exact ID. (An ID may lie after now: after the
// clock steps back, the newest events carry IDs ahead of the clock, and
// bounding by them must keep working.) The point and since bounds it feeds
// never cross.
func FuzzParseTime(f *testing.F) {
	for _, s := range []string{
		"2025-11-01T10:20:30Z", "2025-11-01T10:20:30.250+02:00", "2025-11-01", "2025-11-01 10:20",
		"2025-11-01 10:20:30", "2025-11-01T10:20", " 2025-11-01 ", "90m", "2h", "7d", "1d12h", "30s", "2w",
		"0s", "01JCZ6Y0000000000000000000", "7ZZZZZZZZZZZZZZZZZZZZZZZZZ", "", "yesterday", "2999-01-01",
		"9223372036854775807h", "106751d", "1d1d1d", "-2h", "2h-", "0000-01-01T00:00:00Z", "2025-02-30",
		"2025-11-01T10:20:30+25:00", "1", "d", "\x00", "２h",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tm, id, isID, err := ledger.ParseTime(s, parseNow)
		if err != nil {
			if ledger.ErrorCode(err) != ledger.EINVALID {
				t.Fatalf("ParseTime(%q): error code %q, want invalid: %v", s, ledger.ErrorCode(err), err)
			}
			return
		}
		if isID {
			again, perr := ulid.ParseStrict(id.String())
			if perr != nil || again != id {
				t.Fatalf("ParseTime(%q): ID %s does not read back", s, id)
			}
			if !tm.Equal(ledger.IDTime(id)) {
				t.Fatalf("ParseTime(%q): time %v is not the ID's %v", s, tm, ledger.IDTime(id))
			}
		} else {
			if tm.After(parseNow) {
				t.Fatalf("ParseTime(%q) = %v: after now %v", s, tm, parseNow)
			}
			if y := tm.Year(); y >= 0 && y <= 9999 {
				back, _, _, err := ledger.ParseTime(tm.Format(time.RFC3339Nano), parseNow)
				if err != nil || !back.Equal(tm) {
					t.Fatalf("ParseTime(%q) = %v does not read back from RFC 3339: %v, %v", s, tm, back, err)
				}
			}
		}
		until, err := ledger.ParsePoint(s, parseNow)
		if err != nil {
			t.Fatalf("ParsePoint(%q) refuses what ParseTime accepts: %v", s, err)
		}
		since, err := ledger.ParseSince(s, parseNow)
		if err != nil {
			t.Fatalf("ParseSince(%q) refuses what ParseTime accepts: %v", s, err)
		}
		if since.Compare(until) > 0 {
			t.Fatalf("%q: since bound %s after until bound %s", s, since, until)
		}
	})
}

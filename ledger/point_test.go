package ledger_test

import (
	"testing"
	"time"

	"github.com/matryer/is"
	"github.com/oklog/ulid/v2"
	"github.com/portledger/portledger/ledger"
)

// parseNow is the "now" of the time parsing tests.
var parseNow = time.Date(2025, 11, 15, 14, 30, 0, 0, time.UTC)

func TestParseTime(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want time.Time
	}{
		{"RFC 3339 UTC", "2025-11-01T10:20:30Z", time.Date(2025, 11, 1, 10, 20, 30, 0, time.UTC)},
		{"RFC 3339 with offset", "2025-11-01T10:20:30+02:00", time.Date(2025, 11, 1, 8, 20, 30, 0, time.UTC)},
		{"RFC 3339 with milliseconds", "2025-11-01T10:20:30.250Z", time.Date(2025, 11, 1, 10, 20, 30, 250e6, time.UTC)},
		{"date", "2025-11-01", time.Date(2025, 11, 1, 0, 0, 0, 0, time.Local)},
		{"date and minutes", "2025-11-01 10:20", time.Date(2025, 11, 1, 10, 20, 0, 0, time.Local)},
		{"date and seconds", "2025-11-01 10:20:30", time.Date(2025, 11, 1, 10, 20, 30, 0, time.Local)},
		{"date T seconds", "2025-11-01T10:20:30", time.Date(2025, 11, 1, 10, 20, 30, 0, time.Local)},
		{"surrounding spaces", "  2025-11-01  ", time.Date(2025, 11, 1, 0, 0, 0, 0, time.Local)},
		{"90m ago", "90m", parseNow.Add(-90 * time.Minute)},
		{"2h ago", "2h", parseNow.Add(-2 * time.Hour)},
		{"7d ago", "7d", parseNow.Add(-7 * 24 * time.Hour)},
		{"1d12h ago", "1d12h", parseNow.Add(-36 * time.Hour)},
		{"30s ago", "30s", parseNow.Add(-30 * time.Second)},
		{"2w ago", "2w", parseNow.Add(-14 * 24 * time.Hour)},
		{"now", "0s", parseNow},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			got, id, isID, err := ledger.ParseTime(tt.in, parseNow)
			is.NoErr(err)               // parse
			is.True(got.Equal(tt.want)) // the moment meant
			is.True(!isID)              // not an ID
			is.Equal(id, ulid.ULID{})   // and no ID given back
		})
	}
}

func TestParseTimeULID(t *testing.T) {
	is := is.New(t)
	now := ledger.IDTime(testID).Add(time.Second) // testID's event lies in the past
	got, id, isID, err := ledger.ParseTime(testID.String(), now)
	is.NoErr(err)                        // a ULID parses
	is.True(isID)                        // and is known as one
	is.Equal(id, testID)                 // the ID itself
	is.Equal(got, ledger.IDTime(testID)) // at its time
	_, lower, _, err := ledger.ParseTime(testID.String()[:20]+"aaaaaa", now)
	is.NoErr(err)                                       // lower case is a ULID too
	is.Equal(lower.String()[:20], testID.String()[:20]) // and names the same millisecond
}

func TestParseTimeRefuses(t *testing.T) {
	tests := []struct {
		name string
		in   string
	}{
		{"empty", ""},
		{"spaces", "   "},
		{"word", "yesterday"},
		{"number without unit", "90"},
		{"unknown unit", "5y"},
		{"unit first", "h2"},
		{"trailing garbage", "2h30x"},
		{"negative duration", "-5m"},
		{"overflowing duration", "9999999999999999d"},
		{"overflowing sum", "106751d106751d"},
		{"month 13", "2025-13-01"},
		{"day 32", "2025-01-32"},
		{"slashes", "2025/11/01"},
		{"future RFC 3339", "2025-11-15T14:30:01Z"},
		{"future date", "2099-01-01"},
		{"future local time", "2099-01-01 10:00"},
		{"almost a ULID", "01JCZZZZZZZZZZZZZZZZZZZZZU"},
		{"ULID too long", testID.String() + "0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			_, _, _, err := ledger.ParseTime(tt.in, parseNow)
			is.Equal(ledger.ErrorCode(err), ledger.EINVALID) // refused as invalid
		})
	}
}

func TestParsePointAndSince(t *testing.T) {
	is := is.New(t)
	at := time.Date(2025, 11, 1, 10, 20, 30, 0, time.UTC)

	p, err := ledger.ParsePoint("", parseNow)
	is.NoErr(err)            // an empty point
	is.Equal(p, ulid.ULID{}) // is now: the zero ULID
	s, err := ledger.ParseSince(" ", parseNow)
	is.NoErr(err)            // an empty lower bound
	is.Equal(s, ulid.ULID{}) // is unbounded: the zero ULID

	p, err = ledger.ParsePoint("2025-11-01T10:20:30Z", parseNow)
	is.NoErr(err)                   // a time point
	is.Equal(p, ledger.UntilID(at)) // is the last ID of its millisecond
	s, err = ledger.ParseSince("2025-11-01T10:20:30Z", parseNow)
	is.NoErr(err)                   // a time lower bound
	is.Equal(s, ledger.SinceID(at)) // is the first ID of its millisecond

	later := ledger.IDTime(testID).Add(time.Second) // testID's event lies in the past
	p, err = ledger.ParsePoint(testID.String(), later)
	is.NoErr(err)       // an ID point
	is.Equal(p, testID) // is that event
	s, err = ledger.ParseSince(testID.String(), later)
	is.NoErr(err)       // an ID lower bound
	is.Equal(s, testID) // is that event
	_, err = ledger.ParsePoint(testID.String(), ledger.IDTime(testID).Add(-time.Millisecond))
	is.Equal(ledger.ErrorCode(err), ledger.EINVALID) // an ID of the future is refused, as a future date is

	_, err = ledger.ParsePoint("soon", parseNow)
	is.Equal(ledger.ErrorCode(err), ledger.EINVALID) // a bad point is invalid
	_, err = ledger.ParseSince("2099-01-01", parseNow)
	is.Equal(ledger.ErrorCode(err), ledger.EINVALID) // a future lower bound is invalid
}

func TestSinceAndUntilIDBracketAMillisecond(t *testing.T) {
	is := is.New(t)
	ms := time.Date(2025, 11, 15, 14, 30, 0, 123e6, time.UTC)
	since, until := ledger.SinceID(ms), ledger.UntilID(ms)
	is.Equal(ledger.IDTime(since), ms) // SinceID is in the millisecond
	is.Equal(ledger.IDTime(until), ms) // UntilID is in the millisecond
	// A time within the millisecond gives the same bounds.
	is.Equal(ledger.SinceID(ms.Add(999*time.Microsecond)), since)
	is.Equal(ledger.UntilID(ms.Add(999*time.Microsecond)), until)
	for _, id := range []ulid.ULID{testID, ulid.MustNew(uint64(ms.UnixMilli()), nil)} {
		if ledger.IDTime(id) != ms {
			continue
		}
		is.True(since.Compare(id) <= 0) // every ID of the millisecond is >= SinceID
		is.True(until.Compare(id) >= 0) // and <= UntilID
	}
	is.True(ledger.UntilID(ms.Add(-time.Millisecond)).Compare(since) < 0) // the millisecond before ends before it
	is.True(ledger.SinceID(ms.Add(time.Millisecond)).Compare(until) > 0)  // the one after starts after it
	is.Equal(ledger.SinceID(time.Time{}), ulid.ULID{})                    // times before 1970 clamp to the start
}

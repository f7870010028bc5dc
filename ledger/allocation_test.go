package ledger_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/matryer/is"
	"github.com/portledger/portledger/ledger"
)

func TestParseRange(t *testing.T) {
	tests := []struct {
		in   string
		want ledger.Range
		ok   bool
	}{
		{"8000-8100", ledger.Range{Lo: 8000, Hi: 8100}, true},
		{" 9000 - 9000 ", ledger.Range{Lo: 9000, Hi: 9000}, true},
		{"1-65535", ledger.Range{Lo: 1, Hi: 65535}, true},
		{"8100-8000", ledger.Range{}, false},
		{"0-10", ledger.Range{}, false},
		{"1-70000", ledger.Range{}, false},
		{"-1-10", ledger.Range{}, false},
		{"abc", ledger.Range{}, false},
		{"8000", ledger.Range{}, false},
		{"8000-", ledger.Range{}, false},
		{"-8100", ledger.Range{}, false},
		{"8000-8100-8200", ledger.Range{}, false},
		{"8000:8100", ledger.Range{}, false},
		{"", ledger.Range{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			is := is.New(t)
			got, err := ledger.ParseRange(tt.in)
			if !tt.ok {
				is.Equal(ledger.ErrorCode(err), ledger.EINVALID) // a bad range is invalid
				return
			}
			is.NoErr(err)                                 // a good range parses
			is.Equal(got, tt.want)                        // to its ends
			is.Equal(got.Size(), tt.want.Hi-tt.want.Lo+1) // both ends included
			again, err := ledger.ParseRange(got.String())
			is.NoErr(err)        // String parses back
			is.Equal(again, got) // to the same range
		})
	}
}

func TestRangeContains(t *testing.T) {
	is := is.New(t)
	r := ledger.DefaultRange
	is.True(r.Contains(8000))  // the low end is in
	is.True(r.Contains(8100))  // the high end is in
	is.True(!r.Contains(7999)) // below is out
	is.True(!r.Contains(8101)) // above is out
	is.Equal(r.Size(), 101)    // 8000-8100 is 101 ports
}

func TestDurationAndMillisJSONRoundTrip(t *testing.T) {
	is := is.New(t)
	for _, ms := range []int64{0, 1, 999, 1234567, 86400001} {
		d := ledger.Duration(time.Duration(ms) * time.Millisecond)
		b, err := json.Marshal(d)
		is.NoErr(err) // marshal a duration
		var back ledger.Duration
		is.NoErr(json.Unmarshal(b, &back)) // unmarshal it
		is.Equal(back, d)                  // the same duration, not one nanosecond off

		m := ledger.Millis(1763216999000 + ms)
		b, err = json.Marshal(m)
		is.NoErr(err) // marshal a millisecond time
		var mback ledger.Millis
		is.NoErr(json.Unmarshal(b, &mback)) // unmarshal it
		is.Equal(mback, m)                  // the same millisecond
	}
}

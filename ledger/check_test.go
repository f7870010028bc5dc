package ledger_test

import (
	"testing"

	"github.com/matryer/is"
	"github.com/portledger/portledger/ledger"
)

func TestIsLoopbackHost(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	for host, want := range map[string]bool{
		"127.0.0.1": true, "127.1.2.3": true, "::1": true, "localhost": true, "LocalHost": true,
		"0.0.0.0": false, "10.0.0.1": false, "example.com": false, "localhost.example.com": false, "": false,
	} {
		is.Equal(ledger.IsLoopbackHost(host), want) // host
	}
}

func TestParsePort(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		in   string
		want int
		msg  string // the error's message; "" for none
	}{
		{name: "lowest", in: "1", want: 1},
		{name: "highest", in: "65535", want: 65535},
		{name: "zero", in: "0", msg: "port 0: want 1-65535"},
		{name: "past the last", in: "65536", msg: "port 65536: want 1-65535"},
		{name: "negative", in: "-1", msg: "port -1: want 1-65535"},
		{name: "not a number", in: "http", msg: `port "http": want a number 1-65535`},
		{name: "empty", in: "", msg: `port "": want a number 1-65535`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			got, err := ledger.ParsePort(tt.in)
			if tt.msg == "" {
				is.NoErr(err)          // a port
				is.Equal(got, tt.want) // the number
				is.NoErr(ledger.CheckPort(got))
				return
			}
			is.Equal(ledger.ErrorCode(err), ledger.EINVALID) // not a port
			is.Equal(ledger.ErrorMessage(err), tt.msg)       // the one message
		})
	}
}

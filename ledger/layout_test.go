package ledger

import (
	"testing"

	"github.com/matryer/is"
)

func TestDefaultDataDir(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		env  map[string]string
		want string
	}{
		{name: "LEDGER_DATA wins", env: map[string]string{"LEDGER_DATA": "/d", "XDG_STATE_HOME": "/x", "HOME": "/h"}, want: "/d"},
		{name: "XDG state home", env: map[string]string{"XDG_STATE_HOME": "/x", "HOME": "/h"}, want: "/x/portledger"},
		{name: "home", env: map[string]string{"HOME": "/h"}, want: "/h/.local/state/portledger"},
		{name: "nothing set", env: map[string]string{}, want: "portledger"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			got := DefaultDataDir(func(k string) string { return tt.env[k] })
			is.Equal(got, tt.want) // data directory
		})
	}
}

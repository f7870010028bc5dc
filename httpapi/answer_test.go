package httpapi

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/matryer/is"
	"github.com/portledger/portledger/ledger"
)

// TestClientChecksAllocationAnswers serves, on a real unix socket, a
// daemon that answers allocations it should not (it runs as this user, so
// the peer check lets it through): the client refuses each answer.
func TestClientChecksAllocationAnswers(t *testing.T) {
	tests := []struct {
		name     string
		req      ledger.AllocateRequest
		port     int
		service  string
		rng      string
		wantPass bool
	}{
		{"port 22, outside the range", ledger.AllocateRequest{ServiceName: "api"}, 22, "api", "8000-8100", false},
		{"port 0", ledger.AllocateRequest{ServiceName: "api"}, 0, "api", "", false},
		{"port past 65535", ledger.AllocateRequest{ServiceName: "api"}, 70000, "api", "", false},
		{"not the preferred port", ledger.AllocateRequest{ServiceName: "api", Port: 8005}, 8006, "api", "8000-8100", false},
		{"another service's allocation", ledger.AllocateRequest{ServiceName: "api"}, 8000, "ssh", "8000-8100", false},
		{"a garbled range", ledger.AllocateRequest{ServiceName: "api"}, 8000, "api", "all", false},
		{"a sound answer", ledger.AllocateRequest{ServiceName: "api"}, 8000, "api", "8000-8100", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			sock := filepath.Join(t.TempDir(), "ledger.sock")
			l, err := net.Listen("unix", sock)
			is.NoErr(err)
			srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tt.rng != "" {
					w.Header().Set(RangeHeader, tt.rng)
				}
				w.WriteHeader(http.StatusCreated)
				fmt.Fprintf(w, `{"port":%d,"service_name":%q,"health_status":"starting"}`, tt.port, tt.service)
			})}
			go func() { _ = srv.Serve(l) }()
			t.Cleanup(func() { _ = srv.Close() })

			a, err := NewSocketClient(sock, "").Allocate(context.Background(), tt.req)
			if tt.wantPass {
				is.NoErr(err)             // a sound answer is believed
				is.Equal(a.Port, tt.port) // as it came
				return
			}
			is.Equal(ledger.ErrorCode(err), ledger.EINTERNAL) // the answer is refused: %v
			is.Equal(a.Port, 0)                               // and no port is handed on
		})
	}
}

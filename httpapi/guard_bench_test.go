package httpapi

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/portledger/portledger/commands"
	"github.com/portledger/portledger/ledger"
)

// BenchmarkGuard measures what the security guard (Host check,
// CrossOriginProtection, content type, authorize with the token's hash)
// adds to a request: the same read of one allocation, with the token,
// through NewServer and through the bare router, in one run, in process.
func BenchmarkGuard(b *testing.B) {
	svc := benchLedger(b, b.TempDir())
	a, err := svc.Allocate(context.Background(), ledger.AllocateRequest{ServiceName: "api"})
	if err != nil {
		b.Fatal(err)
	}
	cfg := Config{Service: svc, Events: svc, Token: testToken, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Now: time.Now, Heartbeat: DefaultHeartbeat}
	path := "/api/ports/allocations/" + strconv.Itoa(a.Port)
	for _, h := range []struct {
		name    string
		handler http.Handler
	}{{"bare", routes(cfg)}, {"guarded", NewServer(cfg)}} {
		b.Run(h.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				req := httptest.NewRequest("GET", path, nil)
				req.Host = "127.0.0.1:7999"
				req.Header.Set("Authorization", "Bearer "+testToken)
				w := httptest.NewRecorder()
				h.handler.ServeHTTP(w, req)
				if w.Code != http.StatusOK {
					b.Fatalf("status %d: %s", w.Code, w.Body)
				}
			}
		})
	}
}

// benchLedger opens a real ledger in dir (fsync on) with the test range,
// closed when b ends.
func benchLedger(b *testing.B, dir string) *commands.Ledger {
	log, err := ledger.Open(filepath.Join(dir, "ledger.db"), ledger.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { log.Close() })
	svc, err := commands.New(commands.Config{Log: log})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { svc.Close() })
	if err := svc.SetRange(context.Background(), testRange); err != nil {
		b.Fatal(err)
	}
	return svc
}

package main

import (
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/matryer/is"
	"github.com/portledger/portledger/internal/testbin"
	"github.com/portledger/portledger/ledger"
)

// TestFutureEventIDIsRefusedLikeAFutureDate gives an event ID of tomorrow
// where a moment is asked for: the CLI and the REST API refuse it as they
// refuse tomorrow's date, with a usage error and a 400, never a 500 or an
// answer that speaks of the future.
func TestFutureEventIDIsRefusedLikeAFutureDate(t *testing.T) {
	data := t.TempDir()
	out, errOut, code := run(t, data, "allocate", "--service", "now")
	if code != 0 {
		t.Fatalf("allocate: %s", errOut)
	}
	port := strings.TrimSpace(out)
	tomorrow := time.Now().Add(24 * time.Hour)
	futureID := ledger.SinceID(tomorrow).String()
	for _, tt := range []struct {
		name string
		args []string
	}{
		{"who --at ID", []string{"who", port, "--at", futureID}},
		{"who --at date", []string{"who", port, "--at", tomorrow.Format("2006-01-02 15:04")}},
		{"status --at ID", []string{"status", "--at", futureID}},
		{"usage --until ID", []string{"usage", "--until", futureID}},
		{"history --until ID", []string{"history", "--until", futureID}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			out, errOut, code := run(t, data, tt.args...)
			is.Equal(code, 2)                               // refused as a usage error
			is.True(strings.Contains(errOut, "the future")) // saying why
			is.Equal(out, "")                               // and answering nothing
		})
	}

	is := is.New(t)
	addr := testbin.FreeAddr(t)
	bins.Serve(t, data, e2eRange, addr) // stopped with SIGTERM when the test ends
	for _, path := range []string{
		"/api/ports/who/" + port + "?at=" + futureID,
		"/api/ports/usage?until=" + futureID,
		"/api/ports/status?at=" + futureID,
	} {
		req, err := http.NewRequest("GET", "http://"+addr+path, nil)
		is.NoErr(err)
		tok, err := os.ReadFile(ledger.Layout{Dir: data}.Token())
		is.NoErr(err) // the token the daemon made
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
		resp, err := http.DefaultClient.Do(req)
		is.NoErr(err)
		var body struct{ Error, Code string }
		is.NoErr(json.NewDecoder(resp.Body).Decode(&body))
		resp.Body.Close()
		is.Equal(resp.StatusCode, http.StatusBadRequest) // 400, not 500
		is.Equal(body.Code, "invalid")                   // a JSON error
		is.True(strings.Contains(body.Error, "the future"))
	}
}

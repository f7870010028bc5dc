package httpapi

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/portledger/portledger/ledger"
)

// handlerFunc is a handler that returns its error instead of writing it.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// handle turns a handlerFunc into an http.HandlerFunc whose errors all go
// through writeError.
func handle(log *slog.Logger, fn handlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := fn(w, r); err != nil {
			writeError(w, r, log, err)
		}
	}
}

// requireToken refuses, with 401 and the JSON error, every request that does
// not carry "Authorization: Bearer <token>" or the dashboard's session cookie
// with the token. An empty token lets all through.
// Both sides are hashed before the constant-time compare so that not even the
// token's length shows in the timing.
func requireToken(token string, log *slog.Logger) func(http.Handler) http.Handler {
	want := sha256.Sum256([]byte(token))
	return func(next http.Handler) http.Handler {
		if token == "" {
			return next
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			got, ok := requestToken(r)
			sum := sha256.Sum256([]byte(got))
			if !ok || subtle.ConstantTimeCompare(sum[:], want[:]) != 1 {
				w.Header().Set("WWW-Authenticate", `Bearer realm="portledger"`)
				writeError(w, r, log, ledger.Errorf(EUNAUTHORIZED, "missing or wrong bearer token"))
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// recoverer turns a panic in a handler into a logged internal error, so one
// bad request cannot take the daemon down.
func recoverer(log *slog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			defer func() {
				v := recover()
				if v == nil {
					return
				}
				if v == http.ErrAbortHandler {
					panic(v)
				}
				writeError(w, r, log, fmt.Errorf("handler panic: %v", v))
			}()
			next.ServeHTTP(w, r)
		})
	}
}

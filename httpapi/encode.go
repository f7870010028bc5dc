package httpapi

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"syscall"

	"github.com/portledger/portledger/ledger"
)

// MaxBodyBytes is the largest request body the server reads. A larger body is
// refused with 400 before anything is decided.
const MaxBodyBytes = 64 << 10

// Error codes that only the HTTP layer produces, next to the ledger's own
// (ledger.EINVALID and the others). The client turns them back into a
// *ledger.Error with the same code, like every other error.
const (
	// EUNAUTHORIZED means the request lacks the right bearer token.
	EUNAUTHORIZED = "unauthorized"
	// EUNAVAILABLE means the daemon runs without the part the request needs
	// (no watchdog for a health check, no event source for the stream); it
	// is ledger.EUNAVAILABLE, which subscriptions share.
	EUNAVAILABLE = ledger.EUNAVAILABLE
	// EMETHOD means the path exists but not with this method.
	EMETHOD = "method_not_allowed"
	// EMISDIRECTED means the request's Host is neither a loopback name or
	// address nor one the operator allowed (--allowed-host): a page whose
	// name was made to point at this machine (DNS rebinding).
	EMISDIRECTED = "misdirected"
	// EMEDIATYPE means a request body that is not application/json.
	EMEDIATYPE = "unsupported_media_type"
)

// errorBody is the JSON shape of every error answer.
type errorBody struct {
	Error string `json:"error"`
	Code  string `json:"code"`
}

// statusOf is the one place that maps error codes to HTTP statuses.
//
// A full range (ledger.EEXHAUSTED) answers 503 Service Unavailable rather
// than 409: nothing in the request conflicts with anyone, the ledger simply
// has nothing to give until a port is released, and a client can retry. A
// taken preferred port (ledger.ECONFLICT) is the 409.
func statusOf(code string) int {
	switch code {
	case ledger.EINVALID:
		return http.StatusBadRequest
	case ledger.ENOTFOUND:
		return http.StatusNotFound
	case ledger.ECONFLICT:
		return http.StatusConflict
	case ledger.EEXHAUSTED, EUNAVAILABLE:
		return http.StatusServiceUnavailable
	case EUNAUTHORIZED:
		return http.StatusUnauthorized
	case EMETHOD:
		return http.StatusMethodNotAllowed
	case ledger.EFORBIDDEN:
		return http.StatusForbidden
	case EMISDIRECTED:
		return http.StatusMisdirectedRequest
	case EMEDIATYPE:
		return http.StatusUnsupportedMediaType
	default:
		return http.StatusInternalServerError
	}
}

// writeError answers err as a JSON error. Internal errors are logged with
// their details and shown to the caller only as "internal error".
func writeError(w http.ResponseWriter, r *http.Request, logger *slog.Logger, err error) {
	code := ledger.ErrorCode(err)
	msg := ledger.ErrorMessage(err)
	if code == ledger.EINTERNAL {
		logger.ErrorContext(r.Context(), "request failed",
			"method", r.Method, "path", r.URL.Path, "err", err)
		msg = "internal error"
		if why := storageFault(err); why != "" {
			msg = "internal error: the ledger cannot be written: " + why
		}
	}
	encode(w, r, logger, statusOf(code), errorBody{Error: msg, Code: code})
}

// storageFaults are the file system's refusals that an operator can act on.
var storageFaults = []syscall.Errno{syscall.ENOSPC, syscall.EDQUOT, syscall.EROFS, syscall.EFBIG}

// storageFault names the storage fault behind err (a full or read-only disk,
// a file size limit), or returns "". The errno's text names no path, so it
// is safe to show. bbolt flattens some errors into their text, so the text
// is looked for too.
func storageFault(err error) string {
	for _, errno := range storageFaults {
		if errors.Is(err, errno) || strings.Contains(err.Error(), errno.Error()) {
			return errno.Error()
		}
	}
	return ""
}

// encode writes v as JSON with the given status.
func encode(w http.ResponseWriter, r *http.Request, logger *slog.Logger, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		logger.ErrorContext(r.Context(), "encode response", "path", r.URL.Path, "err", err)
		status = http.StatusInternalServerError
		b = []byte(`{"error":"internal error","code":"internal"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// decode reads one JSON value from the request body into v. It refuses a
// body over MaxBodyBytes, unknown fields, values of the wrong type and
// anything after the value, each as an EINVALID error.
func decode(w http.ResponseWriter, r *http.Request, v any) error {
	return decodeLimit(w, r, v, MaxBodyBytes)
}

// decodeLimit is decode with another size limit, for the one route (import)
// whose bodies are larger by nature.
func decodeLimit(w http.ResponseWriter, r *http.Request, v any, limit int64) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		if err != nil {
			return decodeError(err)
		}
		return ledger.Errorf(ledger.EINVALID, "request body: more than one JSON value")
	}
	return nil
}

// decodeError says in the caller's terms what was wrong with a body.
func decodeError(err error) error {
	var tooLarge *http.MaxBytesError
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &tooLarge):
		return ledger.Errorf(ledger.EINVALID, "request body: larger than %d bytes", tooLarge.Limit)
	case errors.Is(err, io.EOF):
		return ledger.Errorf(ledger.EINVALID, "request body: empty, want a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return ledger.Errorf(ledger.EINVALID, "request body: truncated JSON")
	case errors.As(err, &syntax):
		return ledger.Errorf(ledger.EINVALID, "request body: malformed JSON at byte %d", syntax.Offset)
	case errors.As(err, &typ):
		if typ.Field != "" {
			return ledger.Errorf(ledger.EINVALID, "request body: field %q: want %s, got %s", typ.Field, typ.Type, typ.Value)
		}
		return ledger.Errorf(ledger.EINVALID, "request body: want %s, got %s", typ.Type, typ.Value)
	default:
		// Unknown fields and bad values of custom types (a malformed ULID)
		// land here; their messages name the field and hold no secrets.
		return ledger.Errorf(ledger.EINVALID, "request body: %s", trimJSONPrefix(err.Error()))
	}
}

// trimJSONPrefix drops the "json: " prefix of encoding/json's messages.
func trimJSONPrefix(s string) string {
	return strings.TrimPrefix(s, "json: ")
}

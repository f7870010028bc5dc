package httpapi

import (
	"io"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/portledger/portledger/ledger"
)

// Backuper writes a consistent copy of the ledger file. *ledger.Log
// satisfies it.
type Backuper interface {
	Backup(w io.Writer, began func(size int64)) (int64, error)
}

// handleBackup streams a copy of the ledger file, taken in one read
// transaction while the daemon goes on serving. It needs the token even
// where reads do not: the copy holds the whole record.
func handleBackup(b Backuper, log *slog.Logger) http.HandlerFunc {
	return handle(log, func(w http.ResponseWriter, r *http.Request) error {
		if b == nil {
			return ledger.Errorf(ledger.EUNAVAILABLE, "this server has no ledger file to copy")
		}
		started := false
		_, err := b.Backup(w, func(size int64) {
			started = true
			w.Header().Set("Content-Type", "application/octet-stream")
			w.Header().Set("Content-Disposition", `attachment; filename="ledger.db"`)
			w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
			w.WriteHeader(http.StatusOK)
		})
		if err != nil && !started {
			return err
		}
		if err != nil {
			// The status is sent: a short body (against Content-Length)
			// tells the client the copy is incomplete.
			log.Error("backup", "err", err)
		}
		return nil
	})
}

package portserver

import "errors"

// platformSupport refuses: portpicker on Windows asks a named pipe
// (\\.\pipe\NAME), not a unix socket, and the ledger serves no named pipe.
func platformSupport(string) error {
	return errors.New("--portserver is not available on Windows: portpicker asks a named pipe there, which the ledger does not serve")
}

// Command runchild is the service that the tests of `ledger run` run. It
// serves HTTP on $PORT, or on fd 3 when socket activation says so, writes
// what it saw to -info, and on SIGTERM or SIGINT writes the signal's name to
// -marker and exits with -term-code.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
)

type info struct {
	PID         int    `json:"pid"`
	Port        string `json:"port"`
	LedgerPort  string `json:"ledger_port"`
	Service     string `json:"ledger_service"`
	ListenPID   string `json:"listen_pid"`
	ListenFDs   string `json:"listen_fds"`
	FDNames     string `json:"listen_fdnames"`
	FromFD3     bool   `json:"from_fd3"`
	ListenError string `json:"listen_error,omitempty"`
	// PortVars are the LEDGER_PORT_<SERVICE> variables it was given.
	PortVars map[string]string `json:"port_vars"`
}

func main() {
	infoPath := flag.String("info", "", "write what the process saw here, as JSON, once it serves")
	marker := flag.String("marker", "", "write the name of the signal that stopped it here")
	termCode := flag.Int("term-code", 0, "exit code after SIGTERM or SIGINT")
	exit := flag.Int("exit", -1, "exit at once with this code")
	flag.Parse()
	if *exit >= 0 {
		os.Exit(*exit)
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)

	in := info{
		PID:        os.Getpid(),
		Port:       os.Getenv("PORT"),
		LedgerPort: os.Getenv("LEDGER_PORT"),
		Service:    os.Getenv("LEDGER_SERVICE"),
		ListenPID:  os.Getenv("LISTEN_PID"),
		ListenFDs:  os.Getenv("LISTEN_FDS"),
		FDNames:    os.Getenv("LISTEN_FDNAMES"),
		PortVars:   map[string]string{},
	}
	for _, kv := range os.Environ() {
		if k, v, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "LEDGER_PORT_") {
			in.PortVars[k] = v
		}
	}
	var ln net.Listener
	var err error
	if in.ListenFDs == "1" && in.ListenPID == strconv.Itoa(os.Getpid()) {
		ln, err = net.FileListener(os.NewFile(3, "listener"))
		in.FromFD3 = true
	} else {
		ln, err = net.Listen("tcp", "127.0.0.1:"+in.Port)
	}
	if err != nil {
		in.ListenError = err.Error()
	}
	b, _ := json.Marshal(in)
	if *infoPath != "" {
		tmp := *infoPath + ".tmp"
		if err := os.WriteFile(tmp, b, 0o600); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(90)
		}
		if err := os.Rename(tmp, *infoPath); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(90)
		}
	}
	if ln == nil {
		os.Exit(91)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { w.Write(b) })
	go http.Serve(ln, mux)
	s := <-sigs
	if *marker != "" {
		os.WriteFile(*marker, []byte(s.(syscall.Signal).String()), 0o600)
	}
	os.Exit(*termCode)
}

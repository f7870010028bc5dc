// Command listenchild is the foreign service of the `ledger why` tests: it
// opens one socket (a TCP listener or a bound UDP socket) on -net and
// -addr, writes "ready" to -ready, and waits to be killed.
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"runtime"
	"strings"
)

func main() {
	network := flag.String("net", "tcp4", "tcp4, tcp6, udp4 or udp6")
	addr := flag.String("addr", "127.0.0.1:0", "the address to bind")
	ready := flag.String("ready", "", "write \"ready\" here once bound")
	extra := flag.Int("extra", 0, "also open this many loopback listeners on ports of the kernel's choosing")
	flag.Parse()
	var keep []net.Listener
	for range *extra {
		l, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		keep = append(keep, l)
	}
	var err error
	if strings.HasPrefix(*network, "udp") {
		_, err = net.ListenPacket(*network, *addr)
	} else {
		_, err = net.Listen(*network, *addr)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if *ready != "" {
		if err := os.WriteFile(*ready, []byte("ready"), 0o600); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	defer runtime.KeepAlive(keep) // held open until killed
	select {}
}

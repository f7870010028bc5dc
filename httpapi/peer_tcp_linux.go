package httpapi

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"net"
	"os"
	"strconv"
	"strings"
)

// loopbackPeerUID returns the user that owns the other end of c, a TCP
// connection to this machine: the server's socket of the connection,
// which the kernel gives its listener's owner, as /proc/net/tcp and
// /proc/net/tcp6 list it. ok is false when c is not a loopback TCP
// connection or its other end is not listed.
func loopbackPeerUID(c net.Conn) (uid int, ok bool) {
	local, lok := c.LocalAddr().(*net.TCPAddr)
	remote, rok := c.RemoteAddr().(*net.TCPAddr)
	if !lok || !rok || !remote.IP.IsLoopback() {
		return 0, false
	}
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		f, err := os.Open(table)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		sc.Scan() // the header
		for sc.Scan() {
			// sl local_address rem_address st tx:rx tr:when retrnsmt uid ...
			fields := strings.Fields(sc.Text())
			if len(fields) < 8 {
				continue
			}
			// The server's side: its local address is our remote one.
			if !procAddrIs(fields[1], remote) || !procAddrIs(fields[2], local) {
				continue
			}
			if n, err := strconv.Atoi(fields[7]); err == nil {
				f.Close()
				return n, true
			}
		}
		f.Close()
	}
	return 0, false
}

// procAddrIs reports whether s, an address of /proc/net/tcp{,6} ("0100007F:1F3F":
// the address as 32-bit words in the machine's byte order, then the port,
// in hex), is a.
func procAddrIs(s string, a *net.TCPAddr) bool {
	hexIP, hexPort, found := strings.Cut(s, ":")
	if !found {
		return false
	}
	port, err := strconv.ParseUint(hexPort, 16, 16)
	if err != nil || int(port) != a.Port {
		return false
	}
	raw, err := hex.DecodeString(hexIP)
	if err != nil || (len(raw) != 4 && len(raw) != 16) {
		return false
	}
	ip := make(net.IP, len(raw))
	for i := 0; i < len(raw); i += 4 {
		binary.NativeEndian.PutUint32(ip[i:], binary.BigEndian.Uint32(raw[i:]))
	}
	return ip.Equal(a.IP)
}

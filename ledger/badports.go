package ledger

import (
	"fmt"
	"slices"
	"strings"
)

// badPorts are the ports browsers refuse to fetch from: the Fetch
// standard's "bad port" list (https://fetch.spec.whatwg.org/#port-blocking).
// A web service on one of them cannot be opened in a browser, so the ledger
// does not choose them on its own.
var badPorts = []int{
	1, 7, 9, 11, 13, 15, 17, 19, 20, 21, 22, 23, 25, 37, 42, 43, 53, 69, 77, 79,
	87, 95, 101, 102, 103, 104, 109, 110, 111, 113, 115, 117, 119, 123, 135, 137,
	139, 143, 161, 179, 389, 427, 465, 512, 513, 514, 515, 526, 530, 531, 532,
	540, 548, 554, 556, 563, 587, 601, 636, 989, 990, 993, 995, 1719, 1720, 1723,
	2049, 3659, 4045, 4190, 5060, 5061, 6000, 6566, 6665, 6666, 6667, 6668, 6669,
	6679, 6697, 10080,
}

// BrowserBadPort reports whether browsers refuse to connect to port (the
// Fetch standard's bad-port list). Allocation skips such ports unless one is
// asked for by number.
func BrowserBadPort(port int) bool {
	_, found := slices.BinarySearch(badPorts, port)
	return found
}

// BrowserBadPorts returns the ports of r that browsers refuse, in order.
func BrowserBadPorts(r Range) []int {
	var out []int
	for _, p := range badPorts {
		if r.Contains(p) {
			out = append(out, p)
		}
	}
	return out
}

// FormatPorts renders sorted ports as runs, as in "6000, 6665-6669".
func FormatPorts(ports []int) string {
	var b strings.Builder
	for i := 0; i < len(ports); {
		j := i
		for j+1 < len(ports) && ports[j+1] == ports[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteString(", ")
		}
		if i == j {
			fmt.Fprint(&b, ports[i])
		} else {
			fmt.Fprintf(&b, "%d-%d", ports[i], ports[j])
		}
		i = j + 1
	}
	return b.String()
}

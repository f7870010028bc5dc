package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/matryer/is"
	"github.com/oklog/ulid/v2"
	"github.com/portledger/portledger/commands"
)

// PUT /api/ports/range refuses, as the CLI does, a range among the kernel's
// ephemeral ports unless the request says allow_ephemeral. The check reads
// the real /proc/sys/net/ipv4/ip_local_port_range.
func TestSetRangeRefusesTheEphemeralPorts(t *testing.T) {
	is := is.New(t)
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		t.Skipf("no ephemeral range to read here: %v", err)
	}
	var lo, hi int
	_, err = fmt.Sscan(strings.TrimSpace(string(b)), &lo, &hi)
	is.NoErr(err) // the kernel's range
	overlap := fmt.Sprintf("%d-%d", lo, lo+10)

	e := newEnv(t, func(c *Config) { c.CheckRange = commands.CheckEphemeral })
	before, err := e.svc.Status(context.Background(), ulid.Zero)
	is.NoErr(err) // the range before

	status, m := e.call(t, "PUT", "/api/ports/range", `{"port_range":"`+overlap+`"}`, testToken)
	checkError(t, status, m, http.StatusBadRequest, "invalid")  // refused
	is.True(strings.Contains(m["error"].(string), "ephemeral")) // saying why
	after, err := e.svc.Status(context.Background(), ulid.Zero)
	is.NoErr(err)
	is.Equal(after.PortManager.PortRange, before.PortManager.PortRange) // unchanged

	status, _ = e.call(t, "PUT", "/api/ports/range", `{"port_range":"`+overlap+`","allow_ephemeral":true}`, testToken)
	is.Equal(status, http.StatusNoContent) // taken when asked for
	after, err = e.svc.Status(context.Background(), ulid.Zero)
	is.NoErr(err)
	is.Equal(after.PortManager.PortRange, overlap) // changed
}

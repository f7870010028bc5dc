package httpapi

import (
	"net"
	"net/http"
	"strconv"
	"testing"

	"github.com/matryer/is"
)

func TestAllocateProto(t *testing.T) {
	is := is.New(t)
	e := newEnv(t)
	// The lowest port of the range is bound on UDP: a UDP allocation
	// skips it, a TCP one does not.
	u, err := net.ListenPacket("udp4", "127.0.0.1:"+strconv.Itoa(testRange.Lo))
	is.NoErr(err) // bind UDP
	defer u.Close()
	status, m := e.call(t, "POST", "/api/ports/allocations", `{"service_name":"dns","proto":"udp"}`, "")
	is.Equal(status, http.StatusCreated)         // allocated
	is.Equal(m["port"], float64(testRange.Lo+1)) // past the UDP socket
	status, m = e.call(t, "POST", "/api/ports/allocations", `{"service_name":"api","proto":"tcp"}`, "")
	is.Equal(status, http.StatusCreated)       // allocated
	is.Equal(m["port"], float64(testRange.Lo)) // TCP is free there

	before := e.state(t)
	status, m = e.call(t, "POST", "/api/ports/allocations", `{"service_name":"x","proto":"tcp6x"}`, "")
	checkError(t, status, m, http.StatusBadRequest, "invalid") // refused
	is.Equal(e.state(t), before)                               // and nothing written
}

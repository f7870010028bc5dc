package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/matryer/is"
	"github.com/portledger/portledger/internal/testbin"
)

// whyRange is the managed range of the `ledger why` tests.
const whyRange = "30700-30729"

// whyCmd returns the real binary set up for a data directory and whyRange.
func whyCmd(t *testing.T, data string, args ...string) *exec.Cmd {
	t.Helper()
	return bins.Command(t, data, whyRange, args...)
}

// startListener starts testdata/listenchild with one socket on network and
// addr, waits until it is bound, and kills it when the test ends. A tcp6 or
// udp6 socket on a machine without IPv6 skips the test.
func startListener(t testing.TB, network, addr string) *exec.Cmd {
	t.Helper()
	return startListenerAs(t, bins.Program(t, "./cmd/ledger/testdata/listenchild"), "-net", network, "-addr", addr)
}

// startListenerAs is startListener with prog, listenchild or a copy of it,
// and its arguments (after "--", words it ignores but shows on its command
// line).
func startListenerAs(t testing.TB, prog string, args ...string) *exec.Cmd {
	t.Helper()
	ready := filepath.Join(t.TempDir(), "ready")
	network := "tcp4"
	for i := 0; i+1 < len(args) && args[i] != "--"; i++ {
		if args[i] == "-net" {
			network = args[i+1]
		}
	}
	cmd := exec.Command(prog, append([]string{"-ready", ready}, args...)...)
	var errb testbin.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-exited })
	testbin.WaitFor(t, "listener bound", func() bool {
		select {
		case <-exited:
			if strings.HasSuffix(network, "6") {
				t.Skipf("no IPv6 here: %s", errb.String())
			}
			t.Fatalf("listener exited: %s", errb.String())
		default:
		}
		_, err := os.Stat(ready)
		return err == nil
	})
	return cmd
}

// why runs `ledger why PORT --json` and decodes its answer.
func why(t *testing.T, data string, port int) whyAnswer {
	t.Helper()
	out, errOut, code := testbin.Run(t, whyCmd(t, data, "why", strconv.Itoa(port), "--json"))
	if code != 0 {
		t.Fatalf("ledger why %d: exit %d: %s", port, code, errOut)
	}
	var ans whyAnswer
	if err := json.Unmarshal([]byte(out), &ans); err != nil {
		t.Fatalf("ledger why --json: %v\n%s", err, out)
	}
	return ans
}

func TestWhyNamesTheListener(t *testing.T) {
	cases := []struct {
		name, network, host, proto string
		family                     int
	}{
		{"tcp on IPv4 only", "tcp4", "127.0.0.1", "tcp", 4},
		{"tcp on IPv6 only", "tcp6", "::1", "tcp", 6},
		{"udp", "udp4", "127.0.0.1", "udp", 4},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			is := is.New(t)
			data := t.TempDir()
			port := 30700 + i
			child := startListener(t, c.network, net.JoinHostPort(c.host, strconv.Itoa(port)))
			ans := why(t, data, port)
			is.Equal(len(ans.Sockets), 1)                   // the child's socket
			is.Equal(ans.Sockets[0].Proto, c.proto)         // its protocol
			is.Equal(ans.Sockets[0].Family, c.family)       // its family
			is.Equal(ans.Sockets[0].Addr, c.host)           // its address
			is.Equal(ans.Sockets[0].PID, child.Process.Pid) // its owner
			is.Equal(len(ans.Processes), 1)                 // one process described
			p := ans.Processes[0]
			is.True(strings.Contains(p.Cmdline, "listenchild")) // its command
			is.True(p.User != "")                               // its user
			wd, _ := os.Getwd()
			is.Equal(p.Cwd, wd)              // its working directory: the test's
			is.True(p.StartedAt != nil)      // its start time
			is.Equal(ans.Verdict, "foreign") // the ledger did not hand it out
			is.True(ans.Managed)             // inside the range
			is.True(strings.HasPrefix(ans.Explanation, "not allocated by the ledger: a foreign listener"))

			// The human form says the same.
			out, _, code := testbin.Run(t, whyCmd(t, data, "why", strconv.Itoa(port)))
			is.Equal(code, 0)
			is.True(strings.Contains(out, fmt.Sprintf("pid %d", child.Process.Pid))) // names the pid
			is.True(strings.Contains(out, "a foreign listener"))                     // and the verdict
		})
	}
}

func TestWhyFreePort(t *testing.T) {
	is := is.New(t)
	ans := why(t, t.TempDir(), 30710)
	is.Equal(len(ans.Sockets), 0) // nothing listens
	is.True(ans.Holder == nil)    // nobody holds it
	is.Equal(ans.Verdict, "free") // so it is free
	is.True(strings.HasPrefix(ans.Explanation, "free"))
}

func TestWhyTheLedgerAndItsDisagreements(t *testing.T) {
	data := t.TempDir()
	run := func(t *testing.T, args ...string) string {
		t.Helper()
		out, errOut, code := testbin.Run(t, whyCmd(t, data, args...))
		if code != 0 {
			t.Fatalf("ledger %v: exit %d: %s", args, code, errOut)
		}
		return strings.TrimSpace(out)
	}
	t.Run("held and listening: agree, with the history", func(t *testing.T) {
		is := is.New(t)
		// An earlier holder that let go, then the present one.
		run(t, "allocate", "--service", "grace_backend", "--port", "30715")
		run(t, "release", "30715", "--reason", "process 3121 exited")
		run(t, "allocate", "--service", "learning", "--port", "30715")
		child := startListener(t, "tcp4", "127.0.0.1:30715")
		run(t, "register-pid", "30715", strconv.Itoa(child.Process.Pid))
		ans := why(t, data, 30715)
		is.True(ans.Holder != nil)                   // held
		is.Equal(ans.Holder.ServiceName, "learning") // by learning
		is.Equal(ans.Holder.PID, child.Process.Pid)  // with the listener's pid
		is.Equal(ans.Verdict, "agree")               // the views agree
		is.Equal(len(ans.Before), 1)                 // one earlier holder
		is.Equal(ans.Before[0].Allocation.ServiceName, "grace_backend")
		is.Equal(ans.Before[0].Release.Reason, "process 3121 exited") // and why it let go
		out := run(t, "why", "30715")
		is.True(strings.Contains(out, "held by learning"))      // the human form names the holder
		is.True(strings.Contains(out, `"process 3121 exited"`)) // and the earlier release
	})
	t.Run("allocated to one pid, another listens", func(t *testing.T) {
		is := is.New(t)
		holder := startListener(t, "tcp4", "127.0.0.1:0") // alive, on another port
		run(t, "allocate", "--service", "api", "--port", "30716", "--pid", strconv.Itoa(holder.Process.Pid))
		other := startListener(t, "tcp4", "127.0.0.1:30716")
		ans := why(t, data, 30716)
		is.Equal(ans.Verdict, "other_pid") // the disagreement is named
		want := fmt.Sprintf("allocated to pid %d (api) but pid %d", holder.Process.Pid, other.Process.Pid)
		is.True(strings.HasPrefix(ans.Explanation, want))     // which pid holds, which listens
		is.True(strings.Contains(ans.Advice, "register-pid")) // and what to do
	})
	t.Run("allocated to a pid that is gone, another listens", func(t *testing.T) {
		is := is.New(t)
		holder := startListener(t, "tcp4", "127.0.0.1:0")
		run(t, "allocate", "--service", "old_api", "--port", "30718", "--pid", strconv.Itoa(holder.Process.Pid))
		is.NoErr(holder.Process.Kill())
		testbin.WaitFor(t, "the holder gone", func() bool { return processGone(holder.Process.Pid) }) // and no watchdog has run since
		other := startListener(t, "tcp4", "127.0.0.1:30718")
		ans := why(t, data, 30718)
		is.Equal(ans.Verdict, "other_pid") // the disagreement is named
		want := fmt.Sprintf("allocated to pid %d (old_api) but pid %d", holder.Process.Pid, other.Process.Pid)
		is.True(strings.HasPrefix(ans.Explanation, want))                                                                  // which pid holds, which listens
		is.True(strings.Contains(ans.Explanation, fmt.Sprintf("Pid %d is gone: the ledger is stale", holder.Process.Pid))) // which view is wrong
		is.True(strings.Contains(ans.Advice, "ledger release 30718"))                                                      // and what to do
	})
	t.Run("allocated but nothing listens", func(t *testing.T) {
		is := is.New(t)
		run(t, "allocate", "--service", "worker", "--port", "30717")
		ans := why(t, data, 30717)
		is.Equal(ans.Verdict, "not_listening")                                                 // the disagreement is named
		is.True(strings.HasPrefix(ans.Explanation, "allocated to worker but nothing listens")) // in words
		is.True(strings.Contains(ans.Advice, "ledger release 30717"))                          // and what to do
	})
}

func TestWhyBadInput(t *testing.T) {
	for _, c := range []struct{ name, arg string }{
		{"zero", "0"}, {"not a number", "abc"}, {"too big", "65536"},
	} {
		t.Run(c.name, func(t *testing.T) {
			is := is.New(t)
			out, errOut, code := testbin.Run(t, whyCmd(t, t.TempDir(), "why", c.arg))
			is.Equal(code, 2)                                   // a usage error
			is.Equal(out, "")                                   // prints nothing on stdout
			is.True(strings.HasPrefix(errOut, "ledger: port ")) // and says what is wrong
		})
	}
}

// TestWhyDocker asks about a port that docker publishes, where a docker
// daemon answers; docker is optional, so elsewhere the test is skipped.
func TestWhyDocker(t *testing.T) {
	if _, err := dockerContainers(t.Context(), dockerSocket(os.Getenv)); err != nil {
		t.Skipf("no docker daemon answers here (%v): docker awareness not tested", err)
	}
	docker, err := exec.LookPath("docker")
	if err != nil {
		t.Skip("docker answers but the docker command is missing")
	}
	is := is.New(t)
	name := fmt.Sprintf("ledger-why-%d", os.Getpid())
	out, err := exec.Command(docker, "run", "-d", "--rm", "--name", name, "-p", "127.0.0.1:30720:80", "busybox", "httpd", "-f", "-p", "80").CombinedOutput()
	if err != nil {
		t.Skipf("cannot start a container: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command(docker, "rm", "-f", name).Run() })
	ans := why(t, t.TempDir(), 30720)
	if ans.Container == nil {
		t.Skip("docker publishes the port without a docker-proxy (userland proxy off)")
	}
	is.True(ans.Container.DockerAnswered) // docker answered
	is.Equal(ans.Container.Name, name)    // and named the container
}

// fakeDocker answers docker's GET /containers/json on a unix socket with
// one running container that publishes hostPort, and returns the socket's
// path. It stands in for a docker daemon where none runs, so that the
// docker-proxy path of `ledger why` is exercised on every machine.
func fakeDocker(t *testing.T, hostPort int) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "docker.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	list := fmt.Sprintf(`[{"Id":"4f2a9c81d3e07b6a5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1",
		"Names":["/grace-api-1"],"Image":"grace/api:latest",
		"Ports":[{"IP":"127.0.0.1","PrivatePort":80,"PublicPort":%d,"Type":"tcp"}],
		"NetworkSettings":{"Networks":{"bridge":{"IPAddress":"172.17.0.2"}}}}]`, hostPort)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.URL.Path != "/containers/json" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, list)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return sock
}

// TestWhyDockerProxy puts a process named docker-proxy, with docker-proxy's
// command line, on a port, and a fake docker daemon on a socket that
// DOCKER_HOST names: `why` names the container behind the proxy, and says
// which proxy holds the port when docker does not answer.
func TestWhyDockerProxy(t *testing.T) {
	const port = 30721
	proxy := filepath.Join(t.TempDir(), "docker-proxy")
	b, err := os.ReadFile(bins.Program(t, "./cmd/ledger/testdata/listenchild"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(proxy, b, 0o755); err != nil {
		t.Fatal(err)
	}
	child := startListenerAs(t, proxy, "-net", "tcp4", "-addr", "127.0.0.1:"+strconv.Itoa(port), "--",
		"-proto", "tcp", "-host-ip", "127.0.0.1", "-host-port", strconv.Itoa(port),
		"-container-ip", "172.17.0.2", "-container-port", "80")
	data := t.TempDir()
	whyWith := func(t *testing.T, dockerHost string, args ...string) string {
		t.Helper()
		cmd := whyCmd(t, data, append([]string{"why", strconv.Itoa(port)}, args...)...)
		cmd.Env = append(cmd.Env, "DOCKER_HOST="+dockerHost)
		out, errOut, code := testbin.Run(t, cmd)
		if code != 0 {
			t.Fatalf("ledger why %d: exit %d: %s", port, code, errOut)
		}
		return out
	}
	t.Run("docker answers", func(t *testing.T) {
		is := is.New(t)
		host := "unix://" + fakeDocker(t, port)
		var ans whyAnswer
		is.NoErr(json.Unmarshal([]byte(whyWith(t, host, "--json")), &ans))
		c := ans.Container
		is.True(c != nil)                       // a container is behind the port
		is.Equal(c.ProxyPID, child.Process.Pid) // held by the proxy
		is.Equal(c.ContainerIP, "172.17.0.2")   // forwarding to the container's address
		is.Equal(c.ContainerPort, 80)           // and port, from the proxy's command line
		is.True(c.DockerAnswered)               // docker answered
		is.Equal(c.Name, "grace-api-1")         // and named the container
		is.Equal(c.Image, "grace/api:latest")   // and its image
		is.Equal(c.ID, "4f2a9c81d3e0")          // by its short id
		is.Equal(ans.Verdict, "foreign")        // the ledger did not hand it out
		out := whyWith(t, host)
		want := fmt.Sprintf("in a container: grace-api-1 (docker, image grace/api:latest), where docker-proxy (pid %d) holds it, forwarding to 172.17.0.2:80", child.Process.Pid)
		is.True(strings.Contains(out, want)) // the human form says so
	})
	t.Run("docker does not answer", func(t *testing.T) {
		is := is.New(t)
		host := "unix://" + filepath.Join(t.TempDir(), "none.sock")
		var ans whyAnswer
		is.NoErr(json.Unmarshal([]byte(whyWith(t, host, "--json")), &ans))
		c := ans.Container
		is.True(c != nil)                       // the proxy is still named
		is.Equal(c.ProxyPID, child.Process.Pid) // by its pid
		is.True(!c.DockerAnswered)              // docker did not answer
		is.Equal(c.Name, "")                    // so no container is named
		is.True(strings.Contains(whyWith(t, host), "docker does not answer on its socket"))
	})
}

// TestWhyDockerWithoutProxy asks about a port that docker publishes through
// the firewall alone (its userland proxy off): nothing listens, and the
// fake docker daemon names the container.
func TestWhyDockerWithoutProxy(t *testing.T) {
	is := is.New(t)
	const port = 30722
	cmd := whyCmd(t, t.TempDir(), "why", strconv.Itoa(port), "--json")
	cmd.Env = append(cmd.Env, "DOCKER_HOST=unix://"+fakeDocker(t, port))
	out, errOut, code := testbin.Run(t, cmd)
	if code != 0 {
		t.Fatalf("ledger why %d: exit %d: %s", port, code, errOut)
	}
	var ans whyAnswer
	is.NoErr(json.Unmarshal([]byte(out), &ans))
	is.Equal(len(ans.Sockets), 0) // nothing listens
	is.True(ans.Container != nil) // yet docker publishes it
	is.Equal(ans.Container.ProxyPID, 0)
	is.Equal(ans.Container.Name, "grace-api-1")
	is.Equal(ans.Verdict, "foreign") // so it is not free
	is.True(strings.Contains(ans.Explanation, "docker container grace-api-1 publishes it"))
}

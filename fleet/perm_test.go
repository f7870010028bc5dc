package fleet_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/matryer/is"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/ulid/v2"
	"github.com/portledger/portledger/fleet"
	"github.com/portledger/portledger/fleet/hub"
	"github.com/portledger/portledger/ledger"
)

// hostPermissions is the NATS permission set of one host's daemon, as
// README gives it: it publishes under its own host's subjects only.
func hostPermissions(host string) string {
	return fmt.Sprintf(`{
        publish: {allow: [
          "portledger.events.%[1]s.>", "portledger.snapshots.%[1]s",
          "$KV.PORTLEDGER_LIVE.%[1]s.>", "$KV.PORTLEDGER_HOSTS.%[1]s",
          "$JS.API.INFO", "$JS.API.STREAM.INFO.PORTLEDGER",
          "$JS.API.STREAM.INFO.KV_PORTLEDGER_LIVE", "$JS.API.STREAM.INFO.KV_PORTLEDGER_HOSTS",
          "$JS.API.DIRECT.GET.PORTLEDGER", "$JS.API.DIRECT.GET.KV_PORTLEDGER_LIVE"
        ]}
        subscribe: {allow: ["_INBOX.>"]}
      }`, host)
}

// A hub whose NATS configuration gives each host's daemon a user allowed
// to publish under its own host's subjects only: the daemons publish as
// usual, and a connection as one host cannot publish under another's
// event, snapshot or live-view subjects.
func TestPerHostPermissions(t *testing.T) {
	is := is.New(t)
	conf := filepath.Join(t.TempDir(), "hub.conf")
	is.NoErr(os.WriteFile(conf, []byte(fmt.Sprintf(`
accounts {
  FLEET {
    jetstream: enabled
    users: [
      {user: admin, password: admin}
      {user: reader, password: reader, permissions: {
        publish: {allow: ["$JS.API.INFO", "$JS.API.STREAM.INFO.>", "$JS.API.DIRECT.GET.>", "$JS.API.CONSUMER.CREATE.KV_PORTLEDGER_LIVE.>", "$JS.API.CONSUMER.CREATE.KV_PORTLEDGER_HOSTS.>", "$JS.API.CONSUMER.DELETE.KV_PORTLEDGER_LIVE.>", "$JS.API.CONSUMER.DELETE.KV_PORTLEDGER_HOSTS.>", "$JS.FC.>"]}
        subscribe: {allow: ["_INBOX.>"]}
      }}
      {user: alpha, password: alpha, permissions: %s}
      {user: beta, password: beta, permissions: %s}
    ]
  }
}
`, hostPermissions("alpha"), hostPermissions("beta"))), 0o600))
	h := startHub(t, hub.Options{ConfigFile: conf})
	url := h.ClientURL()
	// The administrator makes the stream and buckets (a hub with its own
	// users leaves them to the first connection that may).
	admin, err := fleet.Connect(fleet.ConnOptions{URL: url, User: "admin", Password: "admin"})
	is.NoErr(err)
	defer admin.Close()
	ajs, err := jetstream.New(admin)
	is.NoErr(err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	is.NoErr(fleet.Ensure(ctx, ajs, fleet.Limits{}))

	cfg := func(user string) fleet.PublisherConfig {
		return fleet.PublisherConfig{SnapshotEvery: 2, Conn: fleet.ConnOptions{User: user, Password: user}}
	}
	a := startHost(t, "alpha", url, cfg("alpha"))
	b := startHost(t, "beta", url, cfg("beta"))
	pa := a.allocate(t, "api")
	a.allocate(t, "web")
	a.release(t, pa, "done")
	b.allocate(t, "db")
	for _, hs := range []*host{a, b} {
		waitFor(t, 10*time.Second, hs.name+" caught up", func() bool {
			st := hs.pub.Status()
			if st.LastError != "" {
				t.Logf("%s: %s", hs.name, st.LastError)
			}
			return st.Connected && st.LagEvents == 0 && st.Published == hs.log.LastID()
		})
	}
	// A restart resumes from the stream under the same permissions.
	a.stop()
	a.allocate(t, "after")
	a.start(t, url, cfg("alpha"))
	a.waitCaughtUp(t, 10*time.Second)

	nc, err := fleet.Connect(fleet.ConnOptions{URL: url, User: "reader", Password: "reader"})
	is.NoErr(err)
	defer nc.Close()
	r, err := fleet.NewReader(nc, nil)
	is.NoErr(err)
	waitFor(t, 10*time.Second, "both hosts in fleet status", func() bool {
		st, err := r.Status(context.Background(), ulid.ULID{})
		if err != nil {
			t.Logf("status: %v", err)
			return false
		}
		n := 0
		for _, fh := range st.Hosts {
			n += len(fh.Allocations)
		}
		return len(st.Hosts) == 2 && n == 3
	})
	_, err = r.Status(context.Background(), ledger.UntilID(time.Now()))
	is.NoErr(err) // time travel as the reader

	// As alpha, under beta's subjects: refused.
	nca, err := fleet.Connect(fleet.ConnOptions{URL: url, User: "alpha", Password: "alpha"})
	is.NoErr(err)
	defer nca.Close()
	jsa, err := jetstream.New(nca)
	is.NoErr(err)
	for _, subj := range []string{fleet.EventSubject("beta", 8000), fleet.SnapshotSubject("beta"), "$KV." + fleet.LiveBucket + ".beta.8000", "$KV." + fleet.HostsBucket + ".beta"} {
		pctx, pcancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		_, err := jsa.Publish(pctx, subj, []byte(`{}`))
		pcancel()
		is.True(err != nil) // refused (the server answers a publish it does not permit with nothing)
	}
	// Under its own: accepted.
	pctx, pcancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer pcancel()
	_, err = jsa.Publish(pctx, fleet.EventSubject("alpha", 9999), []byte(`{}`), jetstream.WithMsgID("alpha.test"))
	is.NoErr(err)
	// And nothing of alpha's landed under beta's subjects.
	info, err := ajs.Stream(ctx, fleet.StreamName)
	is.NoErr(err)
	st, err := info.Info(ctx, jetstream.WithSubjectFilter(fleet.HostEvents("beta")))
	is.NoErr(err)
	is.Equal(st.State.Subjects, map[string]uint64{fleet.EventSubject("beta", 8000): 1}) // beta's one event alone
}

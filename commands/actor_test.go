package commands_test

import (
	"context"
	"testing"

	"github.com/matryer/is"
	"github.com/portledger/portledger/commands"
	"github.com/portledger/portledger/ledger"
)

func TestWritesRecordTheActor(t *testing.T) {
	is := is.New(t)
	l := MustOpen(t, commands.Config{})
	alice := ledger.Actor{Via: ledger.ViaSocket, UID: 1000, PID: 4242}
	bot := ledger.Actor{Via: ledger.ViaTCP, UID: -1, Token: "default"}

	a, err := l.Allocate(ledger.WithActor(context.Background(), alice), ledger.AllocateRequest{ServiceName: "api"})
	is.NoErr(err) // allocate as alice
	_, err = l.Release(ledger.WithActor(context.Background(), bot), ledger.ReleaseRequest{Port: a.Port})
	is.NoErr(err) // release with the token
	_, err = l.Allocate(context.Background(), ledger.AllocateRequest{ServiceName: "anon"})
	is.NoErr(err) // a context without an actor still writes

	evs, err := l.History(context.Background(), ledger.HistoryQuery{Port: a.Port})
	is.NoErr(err)
	is.Equal(len(evs), 3)          // allocate, release, allocate again (sticky lowest port)
	is.Equal(*evs[0].Actor, alice) // the allocation names alice
	is.Equal(*evs[1].Actor, bot)   // the release names the token
	is.Equal(evs[2].Actor, nil)    // no actor in the context: none recorded
}

func TestInvalidActorRefusedAlone(t *testing.T) {
	is := is.New(t)
	l := MustOpen(t, commands.Config{})
	before, err := l.History(context.Background(), ledger.HistoryQuery{})
	is.NoErr(err)
	bad := ledger.WithActor(context.Background(), ledger.Actor{Via: "carrier pigeon"})
	_, err = l.Allocate(bad, ledger.AllocateRequest{ServiceName: "api"})
	is.Equal(ledger.ErrorCode(err), ledger.EINTERNAL) // an actor the codec cannot store is refused
	after, err := l.History(context.Background(), ledger.HistoryQuery{})
	is.NoErr(err)
	is.Equal(len(after), len(before)) // nothing written
}

package fleet

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/portledger/portledger/ledger"
)

// ConnOptions say how to reach the NATS server or cluster of the fleet, with
// the NATS client's own kinds of credentials and TLS.
type ConnOptions struct {
	// URL is one or more comma-separated NATS URLs (nats://host:4222,
	// tls://...).
	URL string
	// Name names the connection in the server's monitoring (default
	// "portledger").
	Name string
	// Creds is a NATS credentials file (JWT and nkey seed).
	Creds string
	// User and Password authenticate with a user name.
	User, Password string
	// Token authenticates with a token.
	Token string
	// NKey is a file holding an nkey seed.
	NKey string
	// TLSCA, TLSCert and TLSKey are PEM files: the CA that signed the
	// server's certificate, and a client certificate and its key.
	TLSCA, TLSCert, TLSKey string
	// Timeout bounds the dial (default 2 s).
	Timeout time.Duration
}

// natsOptions turns o into the NATS client's options. Reconnection is left
// to the client, forever; a publish that fails while it reconnects is sent
// again from the cursor.
func (o ConnOptions) natsOptions() ([]nats.Option, error) {
	name := o.Name
	if name == "" {
		name = "portledger"
	}
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	opts := []nats.Option{
		nats.Name(name),
		nats.Timeout(timeout),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		// Publishes made while disconnected fail at once instead of
		// filling a buffer: the publisher's backlog is the log itself.
		nats.ReconnectBufSize(-1),
		// The client's default handler prints to stderr; errors reach the
		// publisher's status through failed publishes instead.
		nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}),
	}
	n := 0
	if o.Creds != "" {
		opts = append(opts, nats.UserCredentials(o.Creds))
		n++
	}
	if o.User != "" || o.Password != "" {
		opts = append(opts, nats.UserInfo(o.User, o.Password))
		n++
	}
	if o.Token != "" {
		opts = append(opts, nats.Token(o.Token))
		n++
	}
	if o.NKey != "" {
		opt, err := nats.NkeyOptionFromSeed(o.NKey)
		if err != nil {
			return nil, ledger.Errorf(ledger.EINVALID, "nkey seed file %s: %v", o.NKey, err)
		}
		opts = append(opts, opt)
		n++
	}
	if n > 1 {
		return nil, ledger.Errorf(ledger.EINVALID, "give one kind of NATS credentials: a creds file, a user and password, a token or an nkey")
	}
	if o.TLSCA != "" {
		opts = append(opts, nats.RootCAs(o.TLSCA))
	}
	if (o.TLSCert == "") != (o.TLSKey == "") {
		return nil, ledger.Errorf(ledger.EINVALID, "a TLS client certificate needs both its certificate and its key file")
	}
	if o.TLSCert != "" {
		opts = append(opts, nats.ClientCert(o.TLSCert, o.TLSKey))
	}
	return opts, nil
}

// Connect dials the fleet's NATS server. The error says what went wrong in
// words a user can act on: a wrong credential, no server listening, a TLS
// mismatch.
func Connect(o ConnOptions) (*nats.Conn, error) {
	if o.URL == "" {
		return nil, ledger.Errorf(ledger.EINVALID, "no fleet URL: give --fleet nats://HOST:4222 or LEDGER_FLEET")
	}
	opts, err := o.natsOptions()
	if err != nil {
		return nil, err
	}
	nc, err := nats.Connect(o.URL, opts...)
	if err != nil {
		return nil, connectError(o.URL, err)
	}
	return nc, nil
}

// connectError explains a failed dial.
func connectError(url string, err error) error {
	msg := err.Error()
	switch {
	case errors.Is(err, nats.ErrAuthorization) || strings.Contains(strings.ToLower(msg), "authorization"):
		return fmt.Errorf("fleet %s: the NATS server refused the credentials (%v): check --fleet-creds, --fleet-user/--fleet-password, --fleet-token or --fleet-nkey", url, err)
	case errors.Is(err, nats.ErrNoServers):
		return fmt.Errorf("fleet %s: no NATS server answers (%v): is `ledger hub` or your NATS server running there?", url, err)
	case strings.Contains(msg, "tls") || strings.Contains(msg, "x509") || strings.Contains(msg, "certificate"):
		return fmt.Errorf("fleet %s: TLS failed (%v): check --fleet-tls-ca, --fleet-tls-cert and --fleet-tls-key", url, err)
	}
	return fmt.Errorf("fleet %s: %w", url, err)
}

// Limits are the stream's and the buckets' limits, set when they are
// created (by `ledger hub`, or by the first daemon on a NATS server that
// does not have them yet). A stream that exists is left as it is.
type Limits struct {
	// Replicas is the number of copies in a JetStream cluster (1 or 3).
	Replicas int
	// MaxAge is how long events are kept (default DefaultMaxAge).
	MaxAge time.Duration
	// MaxBytes bounds the stream's size; the oldest events go first
	// (default none: the server's own JetStream store limit, which is a
	// share of the free disk).
	MaxBytes int64
	// Duplicates is the de-duplication window (default DefaultDuplicates).
	Duplicates time.Duration
	// HeartbeatTTL is how long a host's heartbeat lives (default
	// DefaultHeartbeatTTL).
	HeartbeatTTL time.Duration
	// Memory keeps everything in memory instead of files (tests and
	// benchmarks of CPU cost only).
	Memory bool
}

func (l Limits) withDefaults() Limits {
	if l.Replicas <= 0 {
		l.Replicas = 1
	}
	if l.MaxAge <= 0 {
		l.MaxAge = DefaultMaxAge
	}
	if l.MaxBytes <= 0 {
		l.MaxBytes = -1
	}
	if l.Duplicates <= 0 {
		l.Duplicates = DefaultDuplicates
	}
	if l.HeartbeatTTL <= 0 {
		l.HeartbeatTTL = DefaultHeartbeatTTL
	}
	return l
}

// StreamConfig returns the configuration of the stream under l.
func (l Limits) StreamConfig() jetstream.StreamConfig {
	l = l.withDefaults()
	storage := jetstream.FileStorage
	if l.Memory {
		storage = jetstream.MemoryStorage
	}
	return jetstream.StreamConfig{
		Name:        StreamName,
		Description: "portledger: every host's ledger events and registry snapshots",
		Subjects:    []string{EventsPrefix + "*.*", SnapshotsPrefix + "*"},
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxAge:      l.MaxAge,
		MaxBytes:    l.MaxBytes,
		Duplicates:  l.Duplicates,
		Storage:     storage,
		Replicas:    l.Replicas,
		AllowDirect: true, // time travel reads single messages by subject and sequence
	}
}

// Ensure creates the stream and the buckets under l where they do not exist
// yet, and leaves those that do as they are (a team's NATS administrator
// may have set them up differently).
func Ensure(ctx context.Context, js jetstream.JetStream, l Limits) error {
	l = l.withDefaults()
	if _, err := js.Stream(ctx, StreamName); errors.Is(err, jetstream.ErrStreamNotFound) {
		if _, err := js.CreateStream(ctx, l.StreamConfig()); err != nil && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			return fmt.Errorf("create stream %s: %w", StreamName, err)
		}
	} else if err != nil {
		return fmt.Errorf("stream %s: %w", StreamName, err)
	}
	storage := jetstream.FileStorage
	if l.Memory {
		storage = jetstream.MemoryStorage
	}
	buckets := []jetstream.KeyValueConfig{
		{Bucket: LiveBucket, Description: "portledger: every host's live allocations, key <host>.<port>", History: 1, Storage: storage, Replicas: l.Replicas},
		{Bucket: HostsBucket, Description: "portledger: one heartbeat per host, key <host>", History: 1, TTL: l.HeartbeatTTL, Storage: storage, Replicas: l.Replicas},
	}
	for _, cfg := range buckets {
		if _, err := js.KeyValue(ctx, cfg.Bucket); errors.Is(err, jetstream.ErrBucketNotFound) {
			if _, err := js.CreateKeyValue(ctx, cfg); err != nil && !errors.Is(err, jetstream.ErrBucketExists) {
				return fmt.Errorf("create bucket %s: %w", cfg.Bucket, err)
			}
		} else if err != nil {
			return fmt.Errorf("bucket %s: %w", cfg.Bucket, err)
		}
	}
	return nil
}

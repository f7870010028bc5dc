package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/ulid/v2"
	"github.com/portledger/portledger/ledger"
	"github.com/portledger/portledger/projection"
)

// Defaults of PublisherConfig.
const (
	DefaultBatch         = 1024                   // events per round of publishing
	DefaultSnapshotEvery = 200                    // events between two snapshots of a host
	DefaultSnapshotAge   = time.Hour              // a host with new events gets a snapshot at least this often
	DefaultSaveEvery     = 100 * time.Millisecond // the cursor is written to the ledger at most this often
	DefaultPoll          = 50 * time.Millisecond  // how often an idle publisher looks at the log without a Notify
	DefaultAckTimeout    = 5 * time.Second
)

// PublisherConfig configures a Publisher.
type PublisherConfig struct {
	// Log is this host's ledger. Required.
	Log *ledger.Log
	// Host is this host's name (see ValidateHost). Required.
	Host string
	// Conn says how to reach NATS.
	Conn ConnOptions
	// Limits are used to create the stream and the buckets when the NATS
	// server has none yet.
	Limits Limits
	// Logger receives connection changes and failures (default
	// slog.Default()).
	Logger *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Heartbeat is how often the host's heartbeat is written (default
	// DefaultHeartbeat; keep it well under the bucket's TTL).
	Heartbeat time.Duration
	// Events, when set, wakes the publisher at each commit; without it the
	// publisher looks at the log every Poll.
	Events ledger.EventService
	// ChainHead, when set, returns the hash-chain head after an event, sent
	// along with it.
	ChainHead func(id ulid.ULID) (string, bool)

	Batch         int
	SnapshotEvery int
	SnapshotAge   time.Duration
	SaveEvery     time.Duration
	Poll          time.Duration
	AckTimeout    time.Duration
}

// Publisher copies this host's committed events onto the fleet's stream in
// log order, exactly once: each message's ID is <host>.<ULID>, so the
// stream drops a re-send, and the last acknowledged ULID is kept in the
// ledger's meta bucket, so a restarted daemon resumes after it. It reads
// its backlog from the log itself, so a hub that is down costs the daemon
// nothing but the lag; it keeps the live view (allocations and heartbeat)
// and sends a registry snapshot now and then.
type Publisher struct {
	cfg  PublisherConfig
	log  *slog.Logger
	wake chan struct{}

	mu        sync.Mutex
	cursor    ulid.ULID // the last event the stream acknowledged
	cursorSeq uint64    // its stream sequence (0: unknown)
	acked     uint64    // events in the log up to cursor that are on the stream
	pending   uint64    // events in the log up to cursor that are not (imported behind it)
	saved     ulid.ULID // the cursor as stored in the ledger
	savedN    uint64    // acked as stored in the ledger
	hasCount  bool      // the ledger had a stored count at start
	imports   []importRec
	connected bool
	lastErr   string

	reg        *projection.Registry // the registry at cursor
	sinceSnap  int                  // events since the last snapshot
	sinceSeqs  []uint64             // their stream sequences
	seqsOK     bool                 // sinceSeqs has every one of them
	snapAt     time.Time
	snapCursor ulid.ULID // the cursor of the last snapshot
	snapNum    uint64    // the number of the host's last snapshot on the stream
	snapBack   []snapRef // back pointers of the next snapshot (see snapRef)
	lastSave   time.Time
	ready      bool // Run counted the events up to the cursor
}

// NewPublisher checks cfg and reads the cursor from the ledger.
func NewPublisher(cfg PublisherConfig) (*Publisher, error) {
	if cfg.Log == nil {
		return nil, errors.New("fleet: publisher needs a log")
	}
	if err := ValidateHost(cfg.Host); err != nil {
		return nil, err
	}
	if cfg.Conn.URL == "" {
		return nil, ledger.Errorf(ledger.EINVALID, "no fleet URL")
	}
	if _, err := cfg.Conn.natsOptions(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defd := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&cfg.Batch, DefaultBatch)
	def(&cfg.SnapshotEvery, DefaultSnapshotEvery)
	defd(&cfg.SnapshotAge, DefaultSnapshotAge)
	defd(&cfg.SaveEvery, DefaultSaveEvery)
	defd(&cfg.Poll, DefaultPoll)
	defd(&cfg.AckTimeout, DefaultAckTimeout)
	defd(&cfg.Heartbeat, DefaultHeartbeat)
	if cfg.Conn.Name == "" {
		cfg.Conn.Name = "portledger " + cfg.Host
	}
	p := &Publisher{cfg: cfg, log: cfg.Logger.With("fleet", cfg.Conn.URL, "host", cfg.Host), wake: make(chan struct{}, 1)}
	cur, err := cfg.Log.Position(PositionName)
	if err != nil {
		return nil, fmt.Errorf("fleet cursor: %w", err)
	}
	p.cursor, p.saved = cur, cur
	n, err := cfg.Log.Position(CountName)
	if err != nil {
		return nil, fmt.Errorf("fleet cursor: %w", err)
	}
	p.savedN, p.hasCount = idCount(n), !n.IsZero()
	return p, nil
}

// setCursor moves the cursor to id (an event of the log, or zero) and
// rebuilds what hangs on it: the registry at it and the count of events up
// to it.
func (p *Publisher) setCursor(id ulid.ULID) error {
	reg := projection.NewRegistry()
	if !id.IsZero() {
		var err error
		if reg, err = projection.StateAt(p.cfg.Log, id); err != nil {
			return fmt.Errorf("fleet: registry at the cursor: %w", err)
		}
	}
	total, err := p.cfg.Log.Count()
	if err != nil {
		return err
	}
	var after uint64
	if err := p.cfg.Log.Scan(id, ulid.Zero, func(ledger.Event) error { after++; return nil }); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cursor, p.cursorSeq, p.reg = id, 0, reg
	p.acked = total - min(after+p.pending, total)
	return nil
}

// Notify tells the publisher that events were committed. It never blocks;
// an idle publisher also looks at the log every PublisherConfig.Poll.
func (p *Publisher) Notify() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// Status reports the publishing lag.
func (p *Publisher) Status() ledger.FleetStatus {
	p.mu.Lock()
	st := ledger.FleetStatus{Host: p.cfg.Host, URL: p.cfg.Conn.URL, Connected: p.connected, Published: p.cursor, LastError: p.lastErr}
	acked, cursor := p.acked, p.cursor
	if !p.ready {
		p.mu.Unlock()
		return st
	}
	p.mu.Unlock()
	total, err := p.cfg.Log.Count()
	if err != nil || total <= acked {
		return st
	}
	st.LagEvents = total - acked
	_ = p.cfg.Log.Scan(cursor, ulid.Zero, func(e ledger.Event) error {
		st.LagSeconds = max(0, p.cfg.Now().Sub(e.At).Seconds())
		return errStop
	})
	return st
}

var errStop = errors.New("stop")

// Run publishes until ctx ends, connecting and reconnecting as needed, and
// stores the cursor before it returns. Failures are logged and shown by
// Status; they never stop Run.
func (p *Publisher) Run(ctx context.Context) error {
	p.mu.Lock()
	cur := p.cursor
	p.mu.Unlock()
	if err := p.setCursor(cur); err != nil {
		return err
	}
	p.mu.Lock()
	if p.hasCount && p.savedN < p.acked {
		// Events were imported behind the cursor while no publisher ran.
		p.pending, p.acked = p.acked-p.savedN, p.savedN
	}
	p.ready = true
	p.mu.Unlock()
	defer p.saveCursor(true)
	if p.cfg.Events != nil {
		wctx, cancel := context.WithCancel(ctx)
		defer cancel()
		go p.follow(wctx)
	}
	backoff := 250 * time.Millisecond
	var nc *nats.Conn
	defer func() {
		if nc != nil {
			nc.Close()
		}
	}()
	for ctx.Err() == nil {
		if nc == nil || nc.IsClosed() {
			var err error
			if nc, err = Connect(p.cfg.Conn); err != nil {
				nc = nil
				p.fail(err)
				backoff = sleep(ctx, backoff, 30*time.Second)
				continue
			}
		}
		err := p.session(ctx, nc)
		if ctx.Err() != nil {
			return nil
		}
		p.fail(err)
		backoff = sleep(ctx, backoff, 5*time.Second)
	}
	return nil
}

// follow wakes the publisher at each commit. Only the wake-up matters: the
// events themselves are read from the log.
func (p *Publisher) follow(ctx context.Context) {
	for ctx.Err() == nil {
		sub, err := p.cfg.Events.Subscribe(ctx, ledger.SubscribeRequest{Buffer: 1024})
		if err != nil {
			sleep(ctx, time.Second, time.Second)
			continue
		}
		for range sub.C() {
			p.Notify()
		}
		sub.Close()
		p.Notify() // dropped: what it missed is in the log
	}
}

// sleep waits d or until ctx ends and returns the next, doubled, wait.
func sleep(ctx context.Context, d, most time.Duration) time.Duration {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
	return min(2*d, most)
}

// fail records a failure once per distinct message.
func (p *Publisher) fail(err error) {
	if err == nil {
		return
	}
	p.mu.Lock()
	p.connected = false
	same := p.lastErr == err.Error()
	p.lastErr = err.Error()
	p.mu.Unlock()
	if !same {
		p.log.Warn("fleet publishing stopped; local service goes on", "err", err)
	}
}

// session publishes over one connection until a failure.
func (p *Publisher) session(ctx context.Context, nc *nats.Conn) error {
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4*p.cfg.Batch))
	if err != nil {
		return err
	}
	octx, cancel := context.WithTimeout(ctx, p.cfg.AckTimeout)
	err = Ensure(octx, js, p.cfg.Limits)
	cancel()
	if err != nil {
		return err
	}
	if err := p.resume(ctx, nc); err != nil {
		return err
	}
	live, err := js.KeyValue(ctx, LiveBucket)
	if err != nil {
		return err
	}
	hosts, err := js.KeyValue(ctx, HostsBucket)
	if err != nil {
		return err
	}
	if err := p.reconcile(ctx, nc, live); err != nil {
		return err
	}
	if err := p.maybeImports(ctx, nc, js); err != nil {
		return err
	}
	if err := p.heartbeat(ctx, hosts); err != nil {
		return err
	}
	p.mu.Lock()
	wasErr := p.lastErr != ""
	p.connected, p.lastErr = true, ""
	p.mu.Unlock()
	if wasErr {
		p.log.Info("fleet publishing resumed")
	}
	beat := time.NewTicker(p.cfg.Heartbeat)
	defer beat.Stop()
	poll := time.NewTicker(p.cfg.Poll)
	defer poll.Stop()
	for {
		n, err := p.publishBatch(ctx, js)
		if err != nil {
			return err
		}
		p.saveCursor(false)
		if n == p.cfg.Batch {
			continue // more waiting
		}
		if n == 0 {
			if err := p.checkImports(); err != nil {
				return err
			}
			if err := p.maybeImports(ctx, nc, js); err != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-beat.C:
			if err := p.heartbeat(ctx, hosts); err != nil {
				return err
			}
		case <-p.wake:
		case <-poll.C:
		}
		if err := p.maybeSnapshot(ctx, js, false); err != nil {
			return err
		}
	}
}

// resume moves the cursor up to the host's last event on the stream when
// the stream has more than the ledger recorded: the daemon stopped after a
// publish was acknowledged and before it stored the cursor.
func (p *Publisher) resume(ctx context.Context, nc *nats.Conn) error {
	octx, cancel := context.WithTimeout(ctx, p.cfg.AckTimeout)
	defer cancel()
	last, seq, chain, err := lastOfHost(octx, nc, p.cfg.Host)
	if err != nil {
		return err
	}
	if err := p.checkChain(last, chain); err != nil {
		return err
	}
	if err := p.resumeSnapshots(octx, nc); err != nil {
		return err
	}
	p.mu.Lock()
	cur := p.cursor
	p.mu.Unlock()
	switch last.Compare(cur) {
	case 0:
		p.mu.Lock()
		p.cursorSeq = seq
		p.mu.Unlock()
	case 1:
		if _, err := p.cfg.Log.Get(last); err != nil {
			return fmt.Errorf("the stream has event %s of host %s, which this ledger does not: is another ledger publishing as %s? (%w)", last, p.cfg.Host, p.cfg.Host, err)
		}
		if err := p.setCursor(last); err != nil {
			return err
		}
		p.mu.Lock()
		p.cursorSeq = seq
		p.mu.Unlock()
		p.log.Info("fleet cursor moved to the stream's last event of this host", "from", cur, "to", last)
	}
	// The sequences of the events since the last snapshot are known when
	// there are none.
	p.mu.Lock()
	p.sinceSeqs, p.seqsOK = nil, p.snapCursor == p.cursor
	p.mu.Unlock()
	return nil
}

// checkChain compares the hash-chain head the fleet received with the
// host's last event (header, "<seq>:<link>") with the link the ledger
// stores for that event now. They differ when the ledger file was changed
// after it was published: events cut from its end with the chain head set
// back, or the whole log rewritten with its chain recomputed, which the
// ledger's own `verify` cannot see. The publisher then publishes nothing
// more and says why (status, log) until a person looks.
func (p *Publisher) checkChain(last ulid.ULID, header string) error {
	if header == "" {
		return nil
	}
	h, ok, err := p.cfg.Log.ChainLinkOf(last)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%w: the fleet holds event %s of host %s (chain head %s), which this ledger no longer has: the ledger file was changed after it was published (or another ledger publishes as %s); nothing more is published: run `ledger verify`, compare with the fleet (`ledger fleet history --host %s`), keep the file as evidence",
			ErrChainDiffers, last, p.cfg.Host, header, p.cfg.Host, p.cfg.Host)
	}
	if here, _ := ChainHeader(h, last); here != header {
		return fmt.Errorf("%w: event %s of host %s has chain head %s in this ledger, but the fleet received %s: the ledger file was rewritten after it was published; nothing more is published: keep the file as evidence",
			ErrChainDiffers, last, p.cfg.Host, here, header)
	}
	return nil
}

// ErrChainDiffers is the publisher's error when the ledger's hash chain is
// not the one the fleet received (see checkChain).
var ErrChainDiffers = errors.New("the ledger's hash chain differs from the fleet's copy")

// publishBatch publishes the next events after the cursor, waits for every
// acknowledgement, then moves the cursor and updates the live view. It
// returns how many events it published.
func (p *Publisher) publishBatch(ctx context.Context, js jetstream.JetStream) (int, error) {
	p.mu.Lock()
	cur := p.cursor
	p.mu.Unlock()
	var batch []ledger.Event
	err := p.cfg.Log.Scan(cur, ulid.Zero, func(e ledger.Event) error {
		batch = append(batch, e)
		if len(batch) == p.cfg.Batch {
			return errStop
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		return 0, err
	}
	if len(batch) == 0 {
		return 0, nil
	}
	futures := make([]jetstream.PubAckFuture, 0, len(batch))
	for _, e := range batch {
		m, err := p.eventMsg(e)
		if err != nil {
			return 0, err
		}
		// No retries inside the client: a retry could land after a later
		// message. A failure ends the round, which starts again from the
		// cursor, and the stream drops what it already has.
		f, err := js.PublishMsgAsync(m, jetstream.WithRetryAttempts(0))
		if err != nil {
			return 0, fmt.Errorf("publish: %w", err)
		}
		futures = append(futures, f)
	}
	seqs, err := p.waitAcks(ctx, futures)
	if err != nil {
		return 0, err
	}
	// Every event of the batch is on the stream: fold it, move the cursor,
	// and take a snapshot every SnapshotEvery events on the way (the one
	// at the end of the batch is maybeSnapshot's).
	touched := map[int]bool{}
	var snaps []pendingSnap
	p.mu.Lock()
	for i, e := range batch {
		if e.Port > 0 {
			if _, held := p.reg.Allocs[e.Port]; held || e.Type == ledger.EventAllocated {
				touched[e.Port] = true
			}
		}
		p.reg.Apply(e)
		p.sinceSnap++
		p.sinceSeqs = append(p.sinceSeqs, seqs[i])
		if p.sinceSnap >= p.cfg.SnapshotEvery && i < len(batch)-1 {
			data, err := p.reg.MarshalSnapshot()
			if err != nil {
				p.mu.Unlock()
				return 0, err
			}
			snaps = append(snaps, pendingSnap{data: data, asOf: e.ID, seq: seqs[i], seqs: p.sinceSeqs, seqsOK: p.seqsOK})
			p.sinceSnap, p.sinceSeqs, p.seqsOK = 0, nil, true
		}
	}
	p.cursor, p.cursorSeq = batch[len(batch)-1].ID, seqs[len(seqs)-1]
	p.acked += uint64(len(batch))
	updates := make(map[int][]byte, len(touched))
	for port := range touched {
		if a := p.reg.Allocs[port]; a != nil {
			updates[port], _ = json.Marshal(a)
		} else {
			updates[port] = nil
		}
	}
	p.mu.Unlock()
	if err := p.updateLive(ctx, js, updates); err != nil {
		return len(batch), err
	}
	for _, sn := range snaps {
		if err := p.publishSnapshot(ctx, js, sn); err != nil {
			return len(batch), err
		}
	}
	return len(batch), p.maybeSnapshot(ctx, js, false)
}

// eventMsg is the stream message of an event.
func (p *Publisher) eventMsg(e ledger.Event) (*nats.Msg, error) {
	data, err := json.Marshal(e)
	if err != nil {
		return nil, err
	}
	m := nats.NewMsg(EventSubject(p.cfg.Host, e.Port))
	m.Data = data
	m.Header.Set(nats.MsgIdHdr, MsgID(p.cfg.Host, e.ID))
	m.Header.Set(HeaderHost, p.cfg.Host)
	if p.cfg.ChainHead != nil {
		if head, ok := p.cfg.ChainHead(e.ID); ok {
			m.Header.Set(HeaderChain, head)
		}
	}
	return m, nil
}

// maybeImports publishes imported events when some wait behind the cursor.
func (p *Publisher) maybeImports(ctx context.Context, nc *nats.Conn, js jetstream.JetStream) error {
	p.mu.Lock()
	pending := p.pending
	p.mu.Unlock()
	if pending == 0 {
		return nil
	}
	return p.publishImports(ctx, nc, js)
}

// pendingSnap is a snapshot to publish: the registry after event asOf,
// whose stream sequence is seq.
type pendingSnap struct {
	data   []byte
	asOf   ulid.ULID
	seq    uint64
	seqs   []uint64 // the host's events since the snapshot before
	seqsOK bool     // seqs is all of them
}

// updateLive writes the live view's keys of the ports a batch touched: the
// allocation, or a delete when the port is free.
func (p *Publisher) updateLive(ctx context.Context, js jetstream.JetStream, updates map[int][]byte) error {
	if len(updates) == 0 {
		return nil
	}
	futures := make([]jetstream.PubAckFuture, 0, len(updates))
	for port, v := range updates {
		m := nats.NewMsg("$KV." + LiveBucket + "." + LiveKey(p.cfg.Host, port))
		if v == nil {
			m.Header.Set("KV-Operation", "DEL")
		} else {
			m.Data = v
		}
		f, err := js.PublishMsgAsync(m)
		if err != nil {
			return fmt.Errorf("live view: %w", err)
		}
		futures = append(futures, f)
	}
	timeout := time.NewTimer(p.cfg.AckTimeout)
	defer timeout.Stop()
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return fmt.Errorf("live view: %w", err)
		case <-timeout.C:
			return fmt.Errorf("live view: no acknowledgement in %s", p.cfg.AckTimeout)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// reconcile makes the live view's keys of this host match the registry at
// the cursor: after a restart, keys of ports freed meanwhile go, and those
// of the current allocations are written again. The host's keys are read
// with a direct get of the bucket's stream (no consumer: a daemon needs no
// right to make one).
func (p *Publisher) reconcile(ctx context.Context, nc *nats.Conn, live jetstream.KeyValue) error {
	prefix := "$KV." + LiveBucket + "."
	msgs, err := multiLastOf(ctx, nc, "KV_"+LiveBucket, prefix+p.cfg.Host+".*", time.Time{})
	if err != nil {
		return fmt.Errorf("live view: %w", err)
	}
	have := map[string]bool{}
	for _, m := range msgs {
		if op := m.Header.Get("KV-Operation"); op == "DEL" || op == "PURGE" {
			continue
		}
		have[strings.TrimPrefix(m.Subject, prefix)] = true
	}
	updates := map[int][]byte{}
	p.mu.Lock()
	for port, a := range p.reg.Allocs {
		updates[port], _ = json.Marshal(a)
		delete(have, LiveKey(p.cfg.Host, port))
	}
	p.mu.Unlock()
	for k := range have {
		if err := live.Delete(ctx, k); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
			return fmt.Errorf("live view: %w", err)
		}
	}
	for port, v := range updates {
		if _, err := live.Put(ctx, LiveKey(p.cfg.Host, port), v); err != nil {
			return fmt.Errorf("live view: %w", err)
		}
	}
	return nil
}

// Heartbeat is the value of a host's key in the hosts bucket.
type Heartbeat struct {
	Host        string    `json:"host"`
	At          time.Time `json:"at"`
	Published   ulid.ULID `json:"published,omitzero"`
	LagEvents   uint64    `json:"lag_events"`
	LagSeconds  float64   `json:"lag_s"`
	Allocations int       `json:"allocations"`
	Range       string    `json:"range"`
}

func (p *Publisher) heartbeat(ctx context.Context, hosts jetstream.KeyValue) error {
	st := p.Status()
	p.mu.Lock()
	hb := Heartbeat{Host: p.cfg.Host, At: p.cfg.Now().UTC(), Published: st.Published, LagEvents: st.LagEvents,
		LagSeconds: st.LagSeconds, Allocations: len(p.reg.Allocs), Range: p.reg.Range.String()}
	p.mu.Unlock()
	b, _ := json.Marshal(hb)
	if _, err := hosts.Put(ctx, p.cfg.Host, b); err != nil {
		return fmt.Errorf("heartbeat: %w", err)
	}
	return nil
}

// maybeSnapshot sends the registry at the cursor to the host's snapshot
// subject when enough events or time passed since the last one (or when
// force is set).
func (p *Publisher) maybeSnapshot(ctx context.Context, js jetstream.JetStream, force bool) error {
	p.mu.Lock()
	due := p.cursor != p.snapCursor && p.cursorSeq != 0 &&
		(force || p.sinceSnap >= p.cfg.SnapshotEvery || p.cfg.Now().Sub(p.snapAt) >= p.cfg.SnapshotAge)
	if !due {
		p.mu.Unlock()
		return nil
	}
	data, err := p.reg.MarshalSnapshot()
	cur, seq, seqs, seqsOK := p.cursor, p.cursorSeq, p.sinceSeqs, p.seqsOK
	p.mu.Unlock()
	if err != nil {
		return err
	}
	if err := p.publishSnapshot(ctx, js, pendingSnap{data: data, asOf: cur, seq: seq, seqs: seqs, seqsOK: seqsOK}); err != nil {
		return err
	}
	p.mu.Lock()
	p.sinceSnap, p.sinceSeqs, p.seqsOK = 0, nil, true
	p.mu.Unlock()
	return nil
}

// publishSnapshot sends a snapshot to the host's snapshot subject, with its
// number and back pointers.
func (p *Publisher) publishSnapshot(ctx context.Context, js jetstream.JetStream, sn pendingSnap) error {
	m := nats.NewMsg(SnapshotSubject(p.cfg.Host))
	m.Data = sn.data
	m.Header.Set(HeaderHost, p.cfg.Host)
	m.Header.Set(HeaderLast, sn.asOf.String())
	m.Header.Set(HeaderLastSeq, fmt.Sprint(sn.seq))
	p.mu.Lock()
	num, back, imports := p.snapNum+1, p.snapBack, p.imports
	p.mu.Unlock()
	m.Header.Set(HeaderSnapNum, fmt.Sprint(num))
	if len(back) > 0 {
		m.Header.Set(HeaderSnapBack, formatSnapRefs(back))
	}
	if len(imports) > 0 {
		m.Header.Set(HeaderImports, formatImports(imports))
	}
	if sn.seqsOK {
		m.Header.Set(HeaderSeqs, formatSeqs(sn.seqs))
	}
	m.Header.Set(nats.MsgIdHdr, "snapshot."+MsgID(p.cfg.Host, sn.asOf)+"."+strconv.FormatUint(num, 10))
	octx, cancel := context.WithTimeout(ctx, p.cfg.AckTimeout)
	defer cancel()
	ack, err := js.PublishMsg(octx, m)
	if err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	p.mu.Lock()
	p.snapAt, p.snapCursor = p.cfg.Now(), sn.asOf
	if !ack.Duplicate { // a duplicate is the one already numbered
		p.snapNum, p.snapBack = num, nextSnapRefs(back, snapRef{Num: num, Seq: ack.Sequence, AsOf: sn.asOf})
	}
	p.mu.Unlock()
	return nil
}

// resumeSnapshots reads the number and back pointers of the host's last
// snapshot on the stream, so that the next one goes on from them.
func (p *Publisher) resumeSnapshots(ctx context.Context, nc *nats.Conn) error {
	m, err := lastBefore(ctx, nc, SnapshotSubject(p.cfg.Host), 0)
	if errors.Is(err, errNoMsg) {
		return nil
	}
	if err != nil {
		return err
	}
	s, err := parseSnap(m)
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.snapNum, p.snapBack, p.snapCursor, p.imports = 0, nil, s.asOf, s.imports
	if s.num > 0 {
		p.snapNum, p.snapBack = s.num, nextSnapRefs(s.back, snapRef{Num: s.num, Seq: m.Seq, AsOf: s.asOf})
	}
	return nil
}

// saveCursor writes the cursor to the ledger when it moved, at most every
// SaveEvery unless final.
func (p *Publisher) saveCursor(final bool) {
	p.mu.Lock()
	cur, saved, n, savedN := p.cursor, p.saved, p.acked, p.savedN
	p.mu.Unlock()
	if cur == saved && n == savedN {
		return
	}
	if !final {
		p.mu.Lock()
		last := p.lastSave
		p.mu.Unlock()
		if time.Since(last) < p.cfg.SaveEvery {
			return
		}
	}
	if err := p.cfg.Log.SetPositions(map[string]ulid.ULID{PositionName: cur, CountName: countID(n)}); err != nil {
		p.log.Error("fleet cursor", "err", err)
		return
	}
	p.mu.Lock()
	p.saved, p.savedN, p.lastSave = cur, n, time.Now()
	p.mu.Unlock()
}

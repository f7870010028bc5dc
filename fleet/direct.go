package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/oklog/ulid/v2"
)

// Direct gets read single messages of the stream by subject and sequence,
// without a consumer: time travel is a few of them per host. The stream is
// made with AllowDirect.

const directGetSubject = "$JS.API.DIRECT.GET." + StreamName

// directRequest is the server's JSApiMsgGetRequest, the fields used here.
type directRequest struct {
	Seq       uint64     `json:"seq,omitempty"`
	NextFor   string     `json:"next_by_subj,omitempty"`
	Batch     int        `json:"batch,omitempty"`
	StartTime *time.Time `json:"start_time,omitempty"`
	MultiLast []string   `json:"multi_last,omitempty"`
	UpToSeq   uint64     `json:"up_to_seq,omitempty"`
	UpToTime  *time.Time `json:"up_to_time,omitempty"`
	NoHeaders bool       `json:"no_hdr,omitempty"`
}

// storedMsg is one message read from the stream.
type storedMsg struct {
	Subject string
	Seq     uint64
	Time    time.Time // when the stream stored it
	Header  nats.Header
	Data    []byte
}

// errNoMsg says that no message matched a direct get.
var errNoMsg = errors.New("no message")

// errTooMany says that a multi-last get matched more subjects than the
// server answers at once (1,024).
var errTooMany = errors.New("too many subjects for one multi-last get")

// readStored decodes a direct get's answer; errNoMsg for a 404 or an end of
// batch.
func readStored(m *nats.Msg) (storedMsg, error) {
	if st := m.Header.Get("Status"); st != "" {
		if st == "404" || st == "204" {
			return storedMsg{}, errNoMsg
		}
		if st == "413" {
			return storedMsg{}, errTooMany
		}
		return storedMsg{}, fmt.Errorf("direct get: %s %s", st, m.Header.Get("Description"))
	}
	seq, err := strconv.ParseUint(m.Header.Get("Nats-Sequence"), 10, 64)
	if err != nil {
		return storedMsg{}, fmt.Errorf("direct get: bad sequence %q", m.Header.Get("Nats-Sequence"))
	}
	ts, _ := time.Parse(time.RFC3339Nano, m.Header.Get("Nats-Time-Stamp"))
	return storedMsg{Subject: m.Header.Get("Nats-Subject"), Seq: seq, Time: ts, Header: m.Header, Data: m.Data}, nil
}

// directTimeout bounds a direct get whose context has no deadline: a
// request that reached a server just killed is never answered.
const directTimeout = 5 * time.Second

// bounded gives ctx a deadline when it has none.
func bounded(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, directTimeout)
}

// directGet asks for one message.
func directGet(ctx context.Context, nc *nats.Conn, req directRequest) (storedMsg, error) {
	ctx, cancel := bounded(ctx)
	defer cancel()
	b, _ := json.Marshal(req)
	m, err := nc.RequestWithContext(ctx, directGetSubject, b)
	if err != nil {
		return storedMsg{}, fmt.Errorf("direct get: %w", err)
	}
	return readStored(m)
}

// lastBefore returns the last message on subject with a sequence at most
// upTo (0: the stream's last); errNoMsg when none. With a wildcard the
// server answers the last message of each matching subject, in sequence
// order, and the newest of them is the answer.
func lastBefore(ctx context.Context, nc *nats.Conn, subject string, upTo uint64) (storedMsg, error) {
	req := directRequest{MultiLast: []string{subject}, UpToSeq: upTo}
	if !strings.ContainsAny(subject, "*>") {
		return directGet(ctx, nc, req)
	}
	var last storedMsg
	err := directBatchReq(ctx, nc, req, func(m storedMsg) (bool, error) {
		if m.Seq > last.Seq {
			last = m
		}
		return true, nil
	})
	if err == nil && last.Seq == 0 {
		err = errNoMsg
	}
	return last, err
}

// nextFrom returns the first message on subject with a sequence at least
// seq; errNoMsg when none.
func nextFrom(ctx context.Context, nc *nats.Conn, subject string, seq uint64) (storedMsg, error) {
	if seq == 0 {
		seq = 1
	}
	return directGet(ctx, nc, directRequest{NextFor: subject, Seq: seq})
}

// directBatch calls fn for the messages on subject from sequence seq on, in
// order, asking batch at a time, until fn returns false or there is no
// more.
func directBatch(ctx context.Context, nc *nats.Conn, subject string, seq uint64, batch int, fn func(storedMsg) (bool, error)) error {
	if seq == 0 {
		seq = 1
	}
	return directBatchReq(ctx, nc, directRequest{NextFor: subject, Seq: seq, Batch: batch}, fn)
}

// directBatchReq is directBatch from a request that starts by sequence or
// by time.
func directBatchReq(ctx context.Context, nc *nats.Conn, req directRequest, fn func(storedMsg) (bool, error)) error {
	sub, inbox, err := directInbox(nc)
	if err != nil {
		return err
	}
	defer sub.Unsubscribe()
	for {
		got, stopped := 0, false
		end, err := directRound(ctx, nc, sub, inbox, directGetSubject, req, func(m *nats.Msg) (bool, error) {
			sm, err := readStored(m)
			if err != nil {
				return false, err
			}
			got++
			req.Seq, req.StartTime = sm.Seq+1, nil
			more, err := fn(sm)
			stopped = !more
			return more, err
		})
		if err != nil || stopped {
			return err
		}
		if _, err := readStored(end); !errors.Is(err, errNoMsg) {
			return err
		}
		if got < req.Batch || len(req.MultiLast) > 0 {
			return nil // a short batch, or a multi-last answer, is all there is
		}
	}
}

// directInbox subscribes to a new inbox for the answers of direct gets.
func directInbox(nc *nats.Conn) (*nats.Subscription, string, error) {
	inbox := nc.NewRespInbox()
	sub, err := nc.SubscribeSync(inbox)
	return sub, inbox, err
}

// directRound sends one direct get request to api and reads its answers on
// sub: each message goes to each until each says no more, and the one with
// a status (the end of a batch, nothing found, or an error) ends the round
// and is returned, unread (nil when each stopped first).
func directRound(ctx context.Context, nc *nats.Conn, sub *nats.Subscription, inbox, api string, req directRequest, each func(*nats.Msg) (bool, error)) (*nats.Msg, error) {
	b, _ := json.Marshal(req)
	if err := nc.PublishRequest(api, inbox, b); err != nil {
		return nil, fmt.Errorf("direct get: %w", err)
	}
	for {
		mctx, cancel := bounded(ctx)
		m, err := sub.NextMsgWithContext(mctx)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("direct get: %w", err)
		}
		if m.Header.Get("Status") != "" {
			return m, nil
		}
		if more, err := each(m); err != nil || !more {
			return nil, err
		}
	}
}

// multiLast returns the last message of each subject that subject matches,
// among the messages the stream stored before upTo (zero: all), in one
// batched direct get (continued while the server says more are pending).
// errTooMany when the subjects are more than the server answers at once.
func multiLast(ctx context.Context, nc *nats.Conn, subject string, upTo time.Time) ([]storedMsg, error) {
	return multiLastOf(ctx, nc, StreamName, subject, upTo)
}

// multiLastOf is multiLast on another stream (a bucket's).
func multiLastOf(ctx context.Context, nc *nats.Conn, stream, subject string, upTo time.Time) ([]storedMsg, error) {
	req := directRequest{MultiLast: []string{subject}}
	if !upTo.IsZero() {
		t := upTo.UTC()
		req.UpToTime = &t
	}
	sub, inbox, err := directInbox(nc)
	if err != nil {
		return nil, err
	}
	defer sub.Unsubscribe()
	var out []storedMsg
	for {
		end, err := directRound(ctx, nc, sub, inbox, "$JS.API.DIRECT.GET."+stream, req, func(m *nats.Msg) (bool, error) {
			sm, err := readStored(m)
			out = append(out, sm)
			return err == nil, err
		})
		if err != nil {
			return nil, err
		}
		if _, err := readStored(end); !errors.Is(err, errNoMsg) {
			return nil, err
		}
		// The end of the answer: an end-of-batch says how many more there
		// are and up to which sequence it read.
		pending, _ := strconv.ParseUint(end.Header.Get("Nats-Num-Pending"), 10, 64)
		upToSeq, _ := strconv.ParseUint(end.Header.Get("Nats-UpTo-Sequence"), 10, 64)
		if end.Header.Get("Status") != "204" || pending == 0 || len(out) == 0 || upToSeq == 0 {
			return out, nil
		}
		req.Seq, req.UpToSeq, req.UpToTime = out[len(out)-1].Seq+1, upToSeq, nil
	}
}

// directBatchData calls fn with the data of the messages on subject from
// sequence seq on, in order, asking batch at a time, until fn returns false
// or there is no more. The server sends the messages without their headers
// (no_hdr), which saves it most of the work of a batch (it would rebuild
// each message's headers with the stream's own); the end of each batch
// says where it stopped.
func directBatchData(ctx context.Context, nc *nats.Conn, subject string, seq uint64, batch int, fn func(data []byte) (bool, error)) error {
	req := directRequest{NextFor: subject, Seq: max(seq, 1), Batch: batch, NoHeaders: true}
	sub, inbox, err := directInbox(nc)
	if err != nil {
		return err
	}
	defer sub.Unsubscribe()
	for {
		got, stopped := 0, false
		end, err := directRound(ctx, nc, sub, inbox, directGetSubject, req, func(m *nats.Msg) (bool, error) {
			got++
			more, err := fn(m.Data)
			stopped = !more
			return more, err
		})
		if err != nil || stopped {
			return err
		}
		if st := end.Header.Get("Status"); st != "404" && st != "204" {
			return fmt.Errorf("direct get: %s %s", st, end.Header.Get("Description"))
		}
		last, _ := strconv.ParseUint(end.Header.Get("Nats-Last-Sequence"), 10, 64)
		if end.Header.Get("Status") == "404" || got < batch || last == 0 {
			return nil // a short batch, or nothing at all
		}
		req.Seq = last + 1
	}
}

// directGetSeqs gets the messages at seqs, all asked at once, and returns
// them in the order of seqs: each is a direct get by sequence, which the
// server answers without looking at any other message.
func directGetSeqs(ctx context.Context, nc *nats.Conn, seqs []uint64) ([]storedMsg, error) {
	if len(seqs) == 0 {
		return nil, nil
	}
	inbox := nc.NewRespInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return nil, err
	}
	defer sub.Unsubscribe()
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		return nil, err
	}
	for _, q := range seqs {
		b, _ := json.Marshal(directRequest{Seq: q})
		if err := nc.PublishRequest(directGetSubject, inbox, b); err != nil {
			return nil, fmt.Errorf("direct get: %w", err)
		}
	}
	bySeq := make(map[uint64]storedMsg, len(seqs))
	for range seqs {
		mctx, cancel := bounded(ctx)
		m, err := sub.NextMsgWithContext(mctx)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("direct get: %w", err)
		}
		sm, err := readStored(m)
		if err != nil {
			return nil, fmt.Errorf("direct get by sequence: %w", err)
		}
		bySeq[sm.Seq] = sm
	}
	out := make([]storedMsg, len(seqs))
	for i, q := range seqs {
		m, ok := bySeq[q]
		if !ok {
			return nil, fmt.Errorf("direct get: no answer for sequence %d", q)
		}
		out[i] = m
	}
	return out, nil
}

// eventID returns the event ULID of an event message, from its ID header.
func eventID(h nats.Header) (ulid.ULID, bool) {
	_, id, ok := parseMsgID(h.Get(nats.MsgIdHdr))
	return id, ok
}

// lastOfHost returns the ULID and sequence of host's last event on the
// stream, and its chain head header if it carries one (zero values when
// the host has none).
func lastOfHost(ctx context.Context, nc *nats.Conn, host string) (ulid.ULID, uint64, string, error) {
	m, err := lastBefore(ctx, nc, HostEvents(host), 0)
	if errors.Is(err, errNoMsg) {
		return ulid.Zero, 0, "", nil
	}
	if err != nil {
		return ulid.Zero, 0, "", err
	}
	id, ok := eventID(m.Header)
	if !ok {
		return ulid.Zero, 0, "", fmt.Errorf("stream message %d has no event ID", m.Seq)
	}
	return id, m.Seq, m.Header.Get(HeaderChain), nil
}

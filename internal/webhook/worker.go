package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"
)

// Message is a message claimed for delivery.
type Message struct {
	ID         string // the webhook-id, the same on every attempt
	EndpointID string
	URL        string
	Type       string
	Payload    []byte
	Attempts   int // made before this one
	CreatedAt  time.Time
	// Keys are the endpoint's signing keys, the current one first.
	Keys [][]byte
}

// Attempt is the outcome of one delivery attempt.
type Attempt struct {
	At        time.Time
	Delivered bool
	Status    int // the receiver's HTTP status; 0 when none came
	Error     string
	Latency   time.Duration
	// Next is when to try again; nil when the message failed for good,
	// and then GiveUp says why (its endpoint is disabled with it).
	Next   *time.Time
	GiveUp string
}

// Queue is the delivery queue, kept by the key service in its database.
type Queue interface {
	// Claim leases up to limit due messages to this replica until
	// now+lease.
	Claim(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]Message, error)
	// Finish records an attempt and ends the message's lease.
	Finish(ctx context.Context, id string, a Attempt) error
	// Depth counts the messages waiting.
	Depth(ctx context.Context) (int, error)
	// QueueExpiryNotices queues key.expiring and key.expired as due at
	// now.
	QueueExpiryNotices(ctx context.Context, now time.Time) error
}

// Retries: 5 s, 30 s, 2 min, 10 min, 1 h, then hourly, each with up to
// 10% jitter either way, until GiveUpAfter has passed since the message
// was queued.
var retryDelays = []time.Duration{5 * time.Second, 30 * time.Second, 2 * time.Minute, 10 * time.Minute, time.Hour}

// GiveUpAfter is how long a message is retried before its endpoint is
// disabled.
const GiveUpAfter = 24 * time.Hour

// RetryDelay is the wait after the n-th failed attempt (n from 1), before
// jitter.
func RetryDelay(n int) time.Duration {
	if n < 1 {
		n = 1
	}
	if n > len(retryDelays) {
		return time.Hour
	}
	return retryDelays[n-1]
}

func jitter(d time.Duration) time.Duration {
	span := int64(d / 10)
	return d + time.Duration(rand.Int64N(2*span+1)-span)
}

// lease is how long a claimed message is this replica's: longer than an
// attempt can take (the client gives up after Timeout), so that no live
// replica loses a message it is still sending, and short enough that one
// killed mid-attempt holds its endpoint's queue little.
const lease = Timeout + 10*time.Second

// Config configures a Worker.
type Config struct {
	Queue  Queue
	Client *http.Client // NewClient(Policy{}, Timeout) when nil
	Now    func() time.Time
	Logger *slog.Logger
	// Poll is how often the queue is looked at when idle; 1s when zero.
	Poll time.Duration
	// ExpiryEvery is how often keys close to expiry are looked for; one
	// minute when zero.
	ExpiryEvery time.Duration
	// Concurrency bounds attempts in flight (each to another endpoint);
	// 8 when zero.
	Concurrency int
	// Metrics, when set, counts deliveries and the queue's depth.
	Metrics *Metrics
}

// Worker delivers the queue's messages until its context ends.
type Worker struct {
	cfg Config
}

// NewWorker returns a Worker.
func NewWorker(cfg Config) *Worker {
	if cfg.Client == nil {
		cfg.Client = NewClient(Policy{}, Timeout)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Poll <= 0 {
		cfg.Poll = time.Second
	}
	if cfg.ExpiryEvery <= 0 {
		cfg.ExpiryEvery = time.Minute
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 8
	}
	return &Worker{cfg: cfg}
}

// Run delivers until ctx ends, and then waits for the attempts in flight.
// Up to Concurrency attempts run at once, each to another endpoint; a
// slow receiver holds its own slot only, and a finished attempt claims the
// next message at once.
func (w *Worker) Run(ctx context.Context) {
	poll := time.NewTicker(w.cfg.Poll)
	defer poll.Stop()
	expiry := time.NewTicker(w.cfg.ExpiryEvery)
	defer expiry.Stop()
	slots := make(chan struct{}, w.cfg.Concurrency)
	freed := make(chan struct{}, 1)
	var inflight sync.WaitGroup
	defer inflight.Wait()
	w.expiryNotices(ctx)
	for {
		for range 100 { // while there is work and room, without waiting for the tick
			if n := w.startDue(ctx, slots, freed, &inflight); n == 0 || ctx.Err() != nil {
				break
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-expiry.C:
			w.expiryNotices(ctx)
		case <-poll.C:
		case <-freed:
		}
	}
}

func (w *Worker) expiryNotices(ctx context.Context) {
	if err := w.cfg.Queue.QueueExpiryNotices(ctx, w.cfg.Now()); err != nil && ctx.Err() == nil {
		w.cfg.Logger.Warn("queue webhook expiry notices", "err", err)
	}
}

// startDue claims as many due messages as there are free slots and starts
// an attempt at each; it answers how many it claimed.
func (w *Worker) startDue(ctx context.Context, slots chan struct{}, freed chan struct{}, inflight *sync.WaitGroup) int {
	free := cap(slots) - len(slots)
	if free == 0 {
		return 0
	}
	msgs, err := w.cfg.Queue.Claim(ctx, w.cfg.Now(), lease, free)
	if err != nil {
		if ctx.Err() == nil {
			w.cfg.Logger.Warn("claim webhook messages", "err", err)
		}
		return 0
	}
	for _, m := range msgs {
		slots <- struct{}{} // never blocks: at most free were claimed
		inflight.Add(1)
		go func() {
			defer inflight.Done()
			w.deliver(ctx, m)
			<-slots
			select {
			case freed <- struct{}{}:
			default:
			}
		}()
	}
	if w.cfg.Metrics != nil {
		if n, err := w.cfg.Queue.Depth(ctx); err == nil {
			w.cfg.Metrics.depth.Set(float64(n))
		}
	}
	return len(msgs)
}

// Deliver makes one attempt at m and records it.
func (w *Worker) deliver(ctx context.Context, m Message) {
	// An attempt under way when the service stops is finished, within the
	// client's 10 s timeout, and recorded: cut off after the receiver took
	// the message but before its answer came, it would be sent again.
	a := w.Attempt(context.WithoutCancel(ctx), m)
	// Recorded even as the service stops: a delivered message left
	// unrecorded would be sent again.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := w.cfg.Queue.Finish(rctx, m.ID, a); err != nil {
		w.cfg.Logger.Warn("record webhook attempt", "message", m.ID, "endpoint", m.EndpointID, "err", err)
	}
	result := "failed"
	switch {
	case a.Delivered:
		result = "delivered"
	case a.Next == nil:
		result = "gave_up"
		w.cfg.Logger.Warn("webhook endpoint disabled", "endpoint", m.EndpointID, "reason", a.GiveUp)
	}
	if w.cfg.Metrics != nil {
		w.cfg.Metrics.deliveries.WithLabelValues(result).Inc()
	}
}

// Attempt sends m once and says what came of it, and when to try again.
func (w *Worker) Attempt(ctx context.Context, m Message) Attempt {
	now := w.cfg.Now()
	a := Attempt{At: now}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, m.URL, bytes.NewReader(m.Payload))
	if err != nil {
		a.Error = "the endpoint's URL cannot be requested"
	} else {
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("User-Agent", "appkeys-webhooks/1")
		req.Header.Set(HeaderID, m.ID)
		req.Header.Set(HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
		req.Header.Set(HeaderSignature, Signature(m.ID, now, m.Payload, m.Keys))
		start := time.Now()
		res, err := w.cfg.Client.Do(req)
		if err == nil {
			// Only the status matters: read a bounded part of the body
			// so the connection may be reused, within the client's
			// timeout.
			io.Copy(io.Discard, io.LimitReader(res.Body, MaxResponseBody))
			res.Body.Close()
			a.Status = res.StatusCode
			a.Delivered = res.StatusCode >= 200 && res.StatusCode < 300
			if !a.Delivered {
				a.Error = "HTTP " + strconv.Itoa(res.StatusCode)
			}
		} else {
			a.Error = describe(err)
		}
		a.Latency = time.Since(start)
	}
	if a.Delivered {
		return a
	}
	next := now.Add(jitter(RetryDelay(m.Attempts + 1)))
	if next.Sub(m.CreatedAt) > GiveUpAfter {
		a.GiveUp = fmt.Sprintf("no attempt succeeded for %s (%d attempts); the last: %s", GiveUpAfter, m.Attempts+1, a.Error)
		return a
	}
	a.Next = &next
	return a
}

// describe says why an attempt failed without the URL, whose path or
// query may be a receiver's secret (a chat tool's incoming webhook).
func describe(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var ne net.Error
	switch {
	case errors.Is(err, ErrRefusedAddress):
		return "refused: the endpoint resolves to an address that is not public"
	case errors.As(err, &ne) && ne.Timeout():
		return "timed out"
	case errors.Is(err, context.Canceled):
		return "cancelled"
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return "the endpoint's host name does not resolve"
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) {
		return "could not connect: " + opErr.Op + " failed"
	}
	return "the request failed"
}

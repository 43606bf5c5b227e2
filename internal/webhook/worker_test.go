package webhook

import (
	"context"
	"net/http"
	"net/netip"
	"sync"
	"testing"
	"time"
)

// fakeQueue hands out its messages once each and reports what was
// finished.
type fakeQueue struct {
	mu       sync.Mutex
	pending  []Message
	after    map[string]Message
	finished chan string
}

func (q *fakeQueue) Claim(_ context.Context, _ time.Time, _ time.Duration, limit int) ([]Message, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := min(limit, len(q.pending))
	out := q.pending[:n]
	q.pending = q.pending[n:]
	return out, nil
}

func (q *fakeQueue) Finish(_ context.Context, id string, _ Attempt) error {
	q.mu.Lock()
	if next, ok := q.after[id]; ok { // the endpoint's next message
		q.pending = append(q.pending, next)
	}
	q.mu.Unlock()
	q.finished <- id
	return nil
}
func (q *fakeQueue) Depth(context.Context) (int, error)                  { return 0, nil }
func (q *fakeQueue) QueueExpiryNotices(context.Context, time.Time) error { return nil }

// A receiver that never answers holds its own attempt only: another
// endpoint's messages, the next queued only once the one before it was
// delivered, go out meanwhile.
func TestSlowReceiverHoldsItsOwnSlotOnly(t *testing.T) {
	release := make(chan struct{})
	slow, _ := server(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	fast, _ := server(t, func(w http.ResponseWriter, r *http.Request) {})
	q := &fakeQueue{finished: make(chan string, 10), pending: []Message{
		{ID: "msg_slow", URL: "http://" + slow + "/", CreatedAt: time.Now()},
		{ID: "msg_fast1", URL: "http://" + fast + "/", CreatedAt: time.Now()},
	}, after: map[string]Message{"msg_fast1": {ID: "msg_fast2", URL: "http://" + fast + "/", CreatedAt: time.Now()}}}
	allow := Policy{AllowPrivate: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}
	w := NewWorker(Config{Queue: q, Client: NewClient(allow, time.Minute), Poll: 10 * time.Millisecond, Concurrency: 2})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.Run(ctx)
	}()
	for _, want := range []string{"msg_fast1", "msg_fast2"} {
		select {
		case id := <-q.finished:
			if id != want {
				t.Fatalf("finished %s; want %s while msg_slow waits", id, want)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("%s was not delivered while a slow receiver held the other slot", want)
		}
	}
	close(release)
	if id := <-q.finished; id != "msg_slow" {
		t.Fatalf("finished %s", id)
	}
	cancel()
	<-done
}

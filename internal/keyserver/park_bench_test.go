package keyserver_test

import (
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"github.com/appkeys/appkeys/internal/keyserver"
	"github.com/appkeys/appkeys/internal/servicetest"
)

// BenchmarkIdleLongPollMemory measures the key service's memory per
// waiting long-poll, parked off net/http and held in it, in one process
// after a GC (live heap plus goroutine stacks), beside the floor of an idle
// TCP connection whose server side does nothing. Each iteration opens one
// long-poll; the client end is a raw socket with no buffers or goroutine,
// counted in every row alike. Run with a fixed count:
//
//	go test -run '^$' -bench IdleLongPollMemory -benchtime 5000x ./internal/keyserver
func BenchmarkIdleLongPollMemory(b *testing.B) {
	b.Run("tcp-floor", func(b *testing.B) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		defer ln.Close()
		held := make(chan net.Conn, b.N)
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				held <- c
			}
		}()
		measureLongPolls(b, func() int { return len(held) }, func(c net.Conn) {}, ln.Addr().String())
		close(held)
		for c := range held {
			c.Close()
		}
	})
	for _, mode := range []string{"parked", "held"} {
		b.Run(mode, func(b *testing.B) {
			w := newParkWorld(b, servicetest.WithConfig(func(c *keyserver.Config) { c.HeldLongPolls = mode == "held" }))
			head := w.head(b)
			measureLongPolls(b, func() int { return int(gauge(b, w.svc.Server, "appkeys_feed_waiting")) },
				func(c net.Conn) { w.poll(b, c, head, "60s") }, w.addr)
		})
	}
}

// measureLongPolls opens b.N connections to addr, starts each with open,
// waits (bounded) until waiting reports them all, and reports the growth of
// the live heap and stacks per connection.
func measureLongPolls(b *testing.B, waiting func() int, open func(net.Conn), addr string) {
	b.Helper()
	before := liveBytes()
	conns := make([]net.Conn, 0, b.N)
	b.ResetTimer()
	for range b.N {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			b.Fatal(err)
		}
		open(c)
		conns = append(conns, c)
	}
	for i := 0; waiting() < b.N; i++ {
		if i == 1000 {
			b.Fatalf("%d of %d connections waiting after 10 s", waiting(), b.N)
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.StopTimer()
	after := liveBytes()
	if f := os.Getenv("PARK_HEAP"); f != "" && b.N > 1000 {
		out, _ := os.Create(f + "-" + strings.ReplaceAll(b.Name(), "/", "_"))
		pprof.Lookup("heap").WriteTo(out, 0)
		out.Close()
	}
	b.ReportMetric(float64(after-before)/float64(b.N), "B/conn")
	for _, c := range conns {
		c.Close()
	}
}

// liveBytes is the heap in use by live objects plus goroutine stacks,
// after two collections.
func liveBytes() int64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc + m.StackInuse)
}

// BenchmarkEmptyLongPoll measures a long-poll whose wait runs out with no
// news, what every idle sidecar sends once per wait, parked and held: one
// op is one request and its empty answer on a kept connection, with a 1 ns
// wait, so the op is the overhead of asking and answering, parking
// included, without the wait. Compare the two ns/op of one run.
//
//	go test -run '^$' -bench EmptyLongPoll -count 6 ./internal/keyserver
func BenchmarkEmptyLongPoll(b *testing.B) {
	for _, mode := range []string{"parked", "held"} {
		b.Run(mode, func(b *testing.B) {
			w := newParkWorld(b, servicetest.WithConfig(func(c *keyserver.Config) { c.HeldLongPolls = mode == "held" }))
			head := w.head(b)
			b.SetParallelism(4)
			b.RunParallel(func(pb *testing.PB) {
				c, br := dial(b, w.addr)
				for pb.Next() {
					c.SetDeadline(time.Now().Add(30 * time.Second))
					w.poll(b, c, head, "1ns")
					if resp, a := readAnswer(b, br); resp.StatusCode != http.StatusOK || a.Next != head {
						b.Errorf("answer %d %+v", resp.StatusCode, a)
						return
					}
				}
			})
		})
	}
}

package verify

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestThrottle(t *testing.T) {
	clk := newClock()
	th, err := NewThrottle(ThrottleConfig{Limit: 3, Window: 3 * time.Second, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	guesser, good := netip.MustParseAddr("192.0.2.7"), netip.MustParseAddr("192.0.2.8")
	for i := range 3 {
		if ok, _ := th.Reserve(guesser); !ok {
			t.Fatalf("refused after %d failures of 3", i)
		}
	}
	ok, wait := th.Reserve(guesser)
	if ok || wait != time.Second {
		t.Fatalf("after 3 failures: ok %t, wait %v; want refused for 1s", ok, wait)
	}
	if ok, _ := th.Reserve(good); !ok {
		t.Fatal("another address is refused")
	}
	th.Refund(good)
	clk.Add(time.Second) // one attempt earned back
	if ok, _ := th.Reserve(guesser); !ok {
		t.Fatal("still refused after one attempt was earned back")
	}
	if ok, _ := th.Reserve(guesser); ok {
		t.Fatal("not refused again")
	}
	clk.Add(time.Hour) // a full bucket, never more
	for range 3 {
		th.Reserve(guesser)
	}
	if ok, _ := th.Reserve(guesser); ok {
		t.Fatal("the bucket grew past its limit")
	}
}

// TestThrottleRefund: an attempt given back is there again; refunds never
// grow a bucket past its limit; an address back to a full bucket is not
// tracked.
func TestThrottleRefund(t *testing.T) {
	clk := newClock()
	th, err := NewThrottle(ThrottleConfig{Limit: 2, Window: time.Hour, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	a := netip.MustParseAddr("192.0.2.9")
	for range 10 { // a client with good keys: reserve, refund, forever
		if ok, _ := th.Reserve(a); !ok {
			t.Fatal("a refunded attempt was not given back")
		}
		th.Refund(a)
	}
	if n := th.Len(); n != 0 {
		t.Fatalf("%d addresses tracked after refunds only; want 0", n)
	}
	th.Refund(a) // nothing to give back
	th.Refund(a)
	for range 2 {
		th.Reserve(a)
	}
	if ok, _ := th.Reserve(a); ok {
		t.Fatal("refunds without reservations grew the bucket")
	}
	th.Refund(a)
	if ok, _ := th.Reserve(a); !ok {
		t.Fatal("a refund after the bucket ran dry was not given back")
	}
}

// TestThrottleReserveIsAtomic: many concurrent attempts from one address
// get exactly Limit reservations, however they interleave.
func TestThrottleReserveIsAtomic(t *testing.T) {
	th, err := NewThrottle(ThrottleConfig{Limit: 3, Window: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	addr := netip.MustParseAddr("2001:db8::7")
	var granted atomic.Int64
	var wg sync.WaitGroup
	gate := make(chan struct{})
	for range 60 {
		wg.Go(func() {
			<-gate
			if ok, _ := th.Reserve(addr); ok {
				granted.Add(1)
			}
		})
	}
	close(gate)
	wg.Wait()
	if n := granted.Load(); n != 3 {
		t.Fatalf("%d of 60 concurrent attempts reserved; want 3", n)
	}
}

func TestThrottleGroupsIPv6AndStaysBounded(t *testing.T) {
	th, err := NewThrottle(ThrottleConfig{Limit: 1, Window: time.Hour, Addresses: 2})
	if err != nil {
		t.Fatal(err)
	}
	th.Reserve(netip.MustParseAddr("2001:db8:1:2::1"))
	if ok, _ := th.Reserve(netip.MustParseAddr("2001:db8:1:2:ffff::9")); ok {
		t.Fatal("another address of the same /64 is not refused")
	}
	if ok, _ := th.Reserve(netip.MustParseAddr("2001:db8:1:3::1")); !ok {
		t.Fatal("another /64 is refused")
	}
	th.Reserve(netip.MustParseAddr("::ffff:192.0.2.1"))
	if ok, _ := th.Reserve(netip.MustParseAddr("192.0.2.1")); ok {
		t.Fatal("an IPv4-mapped address counts apart from its IPv4 form")
	}
	th.Reserve(netip.MustParseAddr("192.0.2.2"))
	if n := th.Len(); n != 2 {
		t.Fatalf("%d addresses tracked; want the bound, 2", n)
	}
	if _, err := NewThrottle(ThrottleConfig{Limit: 0, Window: time.Second}); err == nil {
		t.Fatal("a zero limit was accepted")
	}
}

package verify

import (
	"net/netip"
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
		if blocked, _ := th.Blocked(guesser); blocked {
			t.Fatalf("blocked after %d failures of 3", i)
		}
		th.Fail(guesser)
	}
	blocked, wait := th.Blocked(guesser)
	if !blocked || wait != time.Second {
		t.Fatalf("after 3 failures: blocked %t, wait %v; want blocked for 1s", blocked, wait)
	}
	if blocked, _ := th.Blocked(good); blocked {
		t.Fatal("another address is blocked")
	}
	clk.Advance(time.Second) // one attempt earned back
	if blocked, _ := th.Blocked(guesser); blocked {
		t.Fatal("still blocked after one attempt was earned back")
	}
	th.Fail(guesser)
	if blocked, _ := th.Blocked(guesser); !blocked {
		t.Fatal("not blocked again")
	}
	clk.Advance(time.Hour) // a full bucket, never more
	for range 3 {
		th.Fail(guesser)
	}
	if blocked, _ := th.Blocked(guesser); !blocked {
		t.Fatal("the bucket grew past its limit")
	}
}

func TestThrottleGroupsIPv6AndStaysBounded(t *testing.T) {
	th, err := NewThrottle(ThrottleConfig{Limit: 1, Window: time.Hour, Addresses: 2})
	if err != nil {
		t.Fatal(err)
	}
	th.Fail(netip.MustParseAddr("2001:db8:1:2::1"))
	if blocked, _ := th.Blocked(netip.MustParseAddr("2001:db8:1:2:ffff::9")); !blocked {
		t.Fatal("another address of the same /64 is not blocked")
	}
	if blocked, _ := th.Blocked(netip.MustParseAddr("2001:db8:1:3::1")); blocked {
		t.Fatal("another /64 is blocked")
	}
	th.Fail(netip.MustParseAddr("::ffff:192.0.2.1"))
	if blocked, _ := th.Blocked(netip.MustParseAddr("192.0.2.1")); !blocked {
		t.Fatal("an IPv4-mapped address counts apart from its IPv4 form")
	}
	th.Fail(netip.MustParseAddr("192.0.2.2"))
	if n := th.Len(); n != 2 {
		t.Fatalf("%d addresses tracked; want the bound, 2", n)
	}
	if _, err := NewThrottle(ThrottleConfig{Limit: 0, Window: time.Second}); err == nil {
		t.Fatal("a zero limit was accepted")
	}
}

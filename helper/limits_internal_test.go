package helper

import (
	"testing"
	"time"
)

func TestRateLimiterBurstThenRate(t *testing.T) {
	l := Limits{MessagesPerSecond: 10, MessageBurst: 5}
	var r rateLimiter
	now := time.Unix(1000, 0).UnixNano()
	for i := 0; i < 5; i++ {
		if !r.allow(now, &l) {
			t.Fatalf("message %d of the burst refused", i)
		}
	}
	if r.allow(now, &l) {
		t.Fatal("message past the burst allowed")
	}
	// One interval later exactly one more fits.
	now += int64(100 * time.Millisecond)
	if !r.allow(now, &l) {
		t.Fatal("refill after one interval refused")
	}
	if r.allow(now, &l) {
		t.Fatal("second message within one interval allowed")
	}
	// A long pause refills the bucket up to the burst, not beyond.
	now += int64(time.Hour)
	n := 0
	for r.allow(now, &l) {
		n++
	}
	if n != 5 {
		t.Fatalf("after a pause %d messages fit, want the burst of 5", n)
	}
}

func TestRateLimiterOff(t *testing.T) {
	l := Limits{MessagesPerSecond: -1}
	var r rateLimiter
	for i := 0; i < 10000; i++ {
		if !r.allow(0, &l) {
			t.Fatal("disabled limiter refused")
		}
	}
}

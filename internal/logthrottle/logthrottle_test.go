package logthrottle

import (
	"testing"
	"time"
)

func TestThrottle(t *testing.T) {
	var lt Throttle
	if ok, n := lt.Allow(); !ok || n != 0 {
		t.Fatalf("first = %v, %d", ok, n)
	}
	for i := 0; i < 5; i++ {
		if ok, _ := lt.Allow(); ok {
			t.Fatal("a second warning within the second went through")
		}
	}
	lt.last.Add(-int64(time.Second)) // as if a second had passed
	if ok, n := lt.Allow(); !ok || n != 5 {
		t.Fatalf("after a second = %v, %d; want true, 5 held back", ok, n)
	}
}

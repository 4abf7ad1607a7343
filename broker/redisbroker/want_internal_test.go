package redisbroker

import (
	"context"
	"strconv"
	"testing"

	"github.com/redis/go-redis/v9"
)

// After a crowd has gone, the set of channels held is rebuilt to its new
// size (a Go map keeps the table of its peak), and still holds exactly
// the channels left.
func TestWantIsRebuiltAfterTheCrowdLeaves(t *testing.T) {
	rc := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}) // never dialled: not started
	defer rc.Close()
	b := New(rc, Options{})
	ctx := context.Background()
	const n = 3 * minCompact
	chans := make([]string, n)
	for i := range chans {
		chans[i] = "ws:client:" + strconv.Itoa(i)
	}
	for i := 0; i < n; i += 100 { // in batches, as the helper sends them
		if err := b.Subscribe(ctx, chans[i:min(i+100, n)]...); err != nil {
			t.Fatal(err)
		}
	}
	if b.wantPeak != n {
		t.Fatalf("peak after the crowd joined = %d, want %d", b.wantPeak, n)
	}
	const left = 100
	for i := left; i < n; i += 100 {
		if err := b.Unsubscribe(ctx, chans[i:min(i+100, n)]...); err != nil {
			t.Fatal(err)
		}
	}
	if b.wantPeak >= n {
		t.Fatalf("peak after the crowd left = %d: the set was never rebuilt", b.wantPeak)
	}
	if len(b.want) != left {
		t.Fatalf("channels held = %d, want %d", len(b.want), left)
	}
	for _, ch := range chans[:left] {
		if _, ok := b.want[ch]; !ok {
			t.Fatalf("%s lost in the rebuild", ch)
		}
	}
}

package main

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/fxws/websocket/fxtest"
	"github.com/redis/go-redis/v9"
)

// An add sent again with its token (go-redis sends a command again when
// its reply was lost) stores nothing twice and answers the number it
// gave; another add gets the next number.
func TestRedisAddSentAgainStoresOnce(t *testing.T) {
	opts, err := redis.ParseURL(fxtest.StartRedis(t).URL())
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	s := NewRedisStore(rdb, 10)
	ctx := context.Background()
	first, err := s.addOnce(ctx, "alice", json.RawMessage(`"one"`), "token-1")
	if err != nil {
		t.Fatal(err)
	}
	again, err := s.addOnce(ctx, "alice", json.RawMessage(`"one"`), "token-1")
	if err != nil {
		t.Fatal(err)
	}
	next, err := s.Add(ctx, "alice", json.RawMessage(`"two"`))
	if err != nil {
		t.Fatal(err)
	}
	if first.Seq != 1 || again.Seq != 1 || next.Seq != 2 {
		t.Fatalf("numbers %d, %d, %d; want 1, 1 (the same add), 2", first.Seq, again.Seq, next.Seq)
	}
	kept, last, err := s.Since(ctx, "alice", 0)
	if err != nil {
		t.Fatal(err)
	}
	if last != 2 || len(kept) != 2 || string(kept[0].Data) != `"one"` || string(kept[1].Data) != `"two"` {
		t.Fatalf("store holds %v up to %d; want one and two, up to 2", kept, last)
	}
	if ttl := rdb.TTL(ctx, "notif:add:{alice}:token-1").Val(); ttl <= 0 || ttl > addMemory*1e9 {
		t.Fatalf("the add's key lives %v, want up to %d s", ttl, addMemory)
	}
}

package redisbroker_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fxws/websocket/broker"
	"github.com/fxws/websocket/broker/redisbroker"
	"github.com/fxws/websocket/internal/redistest"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// A Redis user whose ACL lacks one channel namespace (here ws:user:*, e.g.
// an ACL narrowed by hand, or a namespace added later) lets the broker
// start, and a channel Redis refuses costs that channel only (found in a
// chaos trial): the first SUBSCRIBE refused with NOPERM failed the whole
// subscription session, and every reconnect subscribed the same channel
// again, so ws:broadcast and every room were lost for good (Connected
// false, a "redis reconnect failed" warning every 10 s) though Redis was
// healthy. Now the Subscribe that names it says so (ErrRefused), the
// others, in the same call or held before, are delivered by the same
// session, the refusal is logged and counted, a reconnect subscribes the
// rest, and the channel is subscribed once the ACL allows it.
func TestChannelRefusedByACLDoesNotCutTheOthers(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	admin := srv.Client()
	if err := admin.Do(ctx, "ACL", "SETUSER", "fxws", "on", ">secret", "resetkeys", "resetchannels",
		"&ws:broadcast", "&ws:room:*", "&ws:client:*", "-@all", "+@connection", "+@pubsub").Err(); err != nil {
		t.Fatal(err)
	}
	user := func(o *redis.Options) { o.Username, o.Password = "fxws", "secret" }
	core, logs := observer.New(zap.InfoLevel)
	rc := srv.Client(user)
	b := redisbroker.New(rc, redisbroker.Options{Logger: zap.New(core)})
	redisbroker.SetRefusedRetry(b, 300*time.Millisecond)
	in := newInbox()
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := b.Start(sctx, in.handle); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	if err := b.Subscribe(ctx, "ws:broadcast", "ws:room:a"); err != nil {
		t.Fatal(err)
	}

	// A login of user u1, and a room joined in the same call: the user's
	// channel is refused by the ACL, the room's is not.
	err := b.Subscribe(ctx, "ws:room:b", "ws:user:u1")
	if !errors.Is(err, redisbroker.ErrRefused) || !errors.Is(err, broker.ErrChangeKept) ||
		!strings.Contains(err.Error(), "ws:user:u1") || !strings.Contains(err.Error(), "NOPERM") {
		t.Fatalf("Subscribe(ws:room:b, ws:user:u1) = %v, want ErrRefused (a kept change) naming ws:user:u1 with Redis's NOPERM", err)
	}
	n, err := admin.PubSubNumSub(ctx, "ws:broadcast", "ws:room:a", "ws:room:b", "ws:user:u1").Result()
	if err != nil {
		t.Fatal(err)
	}
	if n["ws:broadcast"] != 1 || n["ws:room:a"] != 1 || n["ws:room:b"] != 1 || n["ws:user:u1"] != 0 {
		t.Fatalf("subscribers after the refusal: %v, want 1 for each allowed channel and 0 for ws:user:u1", n)
	}
	for _, ch := range []string{"ws:broadcast", "ws:room:a", "ws:room:b"} {
		if err := admin.Publish(ctx, ch, "after").Err(); err != nil {
			t.Fatal(err)
		}
		in.wait(t, ch+"|after")
	}
	st := b.Stats()
	if !st.Connected || st.Sessions != 1 || st.Reconnects != 0 || st.Refused != 1 || st.Refusals < 1 || st.Channels != 4 {
		t.Fatalf("after one refused channel: %+v, want connected on the first session, Refused 1, Channels 4 (the refused one held)", st)
	}
	if !slices.Contains(b.Channels(), "ws:user:u1") {
		t.Fatalf("Channels() = %v, want the refused channel still held", b.Channels())
	}
	warned := logs.FilterMessageSnippet("redis refused to subscribe channels").All()
	if len(warned) == 0 || !strings.Contains(warned[0].ContextMap()["channels"].(string), "ws:user:u1") ||
		!strings.Contains(warned[0].ContextMap()["error"].(string), "NOPERM") {
		t.Fatalf("the refusal was not logged with its channel and Redis's answer: %v", logs.All())
	}

	// A reconnect: the new session subscribes what it may, and lives.
	if err := admin.ClientKillByFilter(ctx, "TYPE", "pubsub").Err(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for b.Stats().Reconnects == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if err := admin.Publish(ctx, "ws:room:b", "reconnected").Err(); err != nil {
		t.Fatal(err)
	}
	in.wait(t, "ws:room:b|reconnected")
	if st := b.Stats(); !st.Connected || st.Reconnects != 1 {
		t.Fatalf("after a reconnect with a refused channel held: %+v, want connected after one reconnect", st)
	}

	// The ACL put right: the channel is subscribed by a retry.
	if err := admin.Do(ctx, "ACL", "SETUSER", "fxws", "&ws:user:*").Err(); err != nil {
		t.Fatal(err)
	}
	for b.Stats().Refused != 0 && time.Now().Before(deadline.Add(5*time.Second)) {
		time.Sleep(20 * time.Millisecond)
	}
	if err := admin.Publish(ctx, "ws:user:u1", "granted").Err(); err != nil {
		t.Fatal(err)
	}
	in.wait(t, "ws:user:u1|granted")
	if st := b.Stats(); st.Refused != 0 || st.Reconnects != 1 {
		t.Fatalf("after the ACL allowed the channel: %+v, want none refused, no further reconnect", st)
	}
}

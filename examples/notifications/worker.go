package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/fxws/websocket/emitter"
	"github.com/fxws/websocket/protocol"
	"github.com/redis/go-redis/v9"
)

// runWorker is the -notify program: a process without sockets (a job, a
// cron, another service) that stores a notification in the servers' Redis
// and sends it with the emitter.
func runWorker(ctx context.Context, cfg config, user, data string, out io.Writer) error {
	if cfg.RedisURL == "" {
		return errors.New("-notify needs REDIS_URL: a worker shares the store and the broker with the servers through Redis (without it, POST to a server)")
	}
	if !json.Valid([]byte(data)) {
		return fmt.Errorf(`-notify %s: the argument must be JSON, such as '{"text":"hi"}'`, user)
	}
	opt, err := redis.ParseURL(cfg.RedisURL)
	if err != nil {
		return fmt.Errorf("REDIS_URL: %w", err)
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	e, err := emitter.New(rdb, emitter.Options{})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := e.Start(ctx); err != nil {
		return err
	}
	defer e.Stop(ctx)
	n, online, err := workerNotify(ctx, NewRedisStore(rdb, cfg.Backlog), e, user, json.RawMessage(data))
	switch {
	case n.Seq == 0:
		return err
	case !online:
		fmt.Fprintf(out, "stored #%d; %s is online nowhere, so no live send: a real service sends a push now\n", n.Seq, user)
	case err != nil:
		fmt.Fprintf(out, "stored #%d; the live send failed (%v): devices catch up from the store\n", n.Seq, err)
	default:
		fmt.Fprintf(out, "stored #%d and sent live\n", n.Seq)
	}
	return nil
}

// workerNotify stores data as the user's next notification, then sends it
// with the emitter unless the user is online nowhere (online false: the
// moment for a push). The error after a store that worked is the live
// send's: the notification is safe, devices read it from the store.
func workerNotify(ctx context.Context, store Store, e *emitter.WebSocketEmitter, user string, data json.RawMessage) (n Notification, online bool, err error) {
	if n, err = store.Add(ctx, user, data); err != nil {
		return n, false, err
	}
	// The count is a moment's: a device that connects right after it reads
	// this notification from the store, where it already is, so skipping
	// the send loses nothing. -1 (not known: a server that subscribes by
	// pattern) or an error: send anyway.
	if count, err := e.Audience(ctx, protocol.TypeUser, user); err == nil && count == 0 {
		return n, false, nil
	}
	return n, true, e.ToUser(ctx, user, EventNotification, n)
}

package emitter

import (
	"context"
	"errors"
	"fmt"

	"github.com/fxws/websocket/protocol"
	"github.com/redis/go-redis/v9"
)

// Audience returns how many servers hold the audience of typ and target
// now, without sending anything: the count Publish would return. For
// TypeUser, the instances where the user has a connection (0: online
// nowhere, as a notification service asks before it sends a push
// instead); for TypeClient, the instance holding the client; for
// TypeRoom, the instances with a member; for TypeBroadcast, the servers.
//
// Redis counts the subscribers of the target's channel, so the count is
// right with every server ours in redisbroker.ModeAudience (the default)
// or ModeSharded (with Options.Sharded). It is -1, not known, where Redis
// cannot say: a server that subscribes by pattern (ModePattern, the
// original's instances) counts for every target, so any pattern
// subscription on the Redis makes it -1; so does a cluster with classic
// pub/sub, whose counts cover one node. A count is a moment's: a
// connection may open or close right after.
func (e *WebSocketEmitter) Audience(ctx context.Context, typ protocol.MessageType, target string) (int, error) {
	if err := checkAudience("Audience", typ, target); err != nil {
		return 0, err
	}
	ch := typ.Channel(target)
	ctx, cancel := context.WithTimeout(ctx, e.opts.PublishTimeout)
	defer cancel()
	n, err := e.subscribers(ctx, ch)
	if err != nil {
		return 0, fmt.Errorf("emitter: Audience of %s: %w", ch, err)
	}
	return n, nil
}

// subscribers counts the servers subscribed to ch, or -1 when Redis
// cannot say.
func (e *WebSocketEmitter) subscribers(ctx context.Context, ch string) (int, error) {
	var node redis.Cmdable = e.client
	cc, onCluster := e.client.(*redis.ClusterClient)
	if onCluster {
		if !e.opts.Sharded {
			return -1, nil
		}
		m, err := cc.MasterForKey(ctx, ch)
		if err != nil {
			return 0, err
		}
		node = m
	}
	if e.opts.Sharded {
		counts, err := node.PubSubShardNumSub(ctx, ch).Result()
		if err != nil {
			return 0, err
		}
		return int(counts[ch]), nil
	}
	// Pattern subscribers are not counted per channel: with any, the
	// count would be short by the servers that use them.
	pats, err := node.PubSubNumPat(ctx).Result()
	if err != nil {
		return 0, err
	}
	if pats > 0 {
		return -1, nil
	}
	counts, err := node.PubSubNumSub(ctx, ch).Result()
	if err != nil {
		return 0, err
	}
	n, ok := counts[ch]
	if !ok {
		return 0, errors.New("redis answered PUBSUB NUMSUB without the channel")
	}
	return int(n), nil
}

// checkAudience refuses what Publish and Audience cannot address: a type
// other than the original's four, or no target for one that needs it.
func checkAudience(method string, typ protocol.MessageType, target string) error {
	if !typ.Valid() {
		return fmt.Errorf("emitter: %s: unknown type %q (client, user, room or broadcast)", method, typ)
	}
	if typ != protocol.TypeBroadcast && target == "" {
		return fmt.Errorf("emitter: %s: empty %s target", method, typ)
	}
	return nil
}

package fxtest

import (
	"testing"

	"github.com/fxws/websocket/internal/redistest"
	"github.com/redis/go-redis/v9"
)

// RedisServer is a real redis-server process on 127.0.0.1, for tests that
// run several instances on one Redis, or take Redis away from them.
type RedisServer struct {
	s *redistest.Server
}

// StartRedis runs a fresh redis-server (from PATH; no persistence) on a
// free port of 127.0.0.1 and kills it when the test ends. Without a
// redis-server binary the test is skipped, or failed when the CI
// environment variable is set. extra are more redis-server arguments.
func StartRedis(tb testing.TB, extra ...string) *RedisServer {
	tb.Helper()
	return &RedisServer{s: redistest.Start(tb, extra...)}
}

// Addr is the server's host:port, for WithRedis or StartCluster.
func (r *RedisServer) Addr() string { return r.s.Addr() }

// URL is the server's redis:// URL.
func (r *RedisServer) URL() string { return r.s.URL() }

// Client returns a new go-redis client of the server, closed when the test
// ends (for an emitter, or to look at Redis). opts adjust its options.
func (r *RedisServer) Client(opts ...func(*redis.Options)) *redis.Client {
	return r.s.Client(opts...)
}

// Kill stops the server at once (SIGKILL), as a crash would; its data is
// gone.
func (r *RedisServer) Kill() { r.s.Kill() }

// Restart starts the server again on the same port, killing it first if
// it runs (a crash and a restart: the data is gone), and returns once it
// answers.
func (r *RedisServer) Restart() { r.s.Restart() }

// RedisCluster is a Redis Cluster of redis-server processes on 127.0.0.1,
// for tests of an app on a cluster: bind one of its clients
// (websocket.WithRedisConnection(c.Client())), with the Redis broker's
// mode of choice (ServerOptions.RedisBroker), in each instance.
type RedisCluster struct {
	c *redistest.Cluster
}

// StartRedisCluster runs a Redis Cluster of masters nodes (no replicas),
// the 16384 slots spread over them, and returns once every node says the
// cluster is ok; it is killed when the test ends. Skipped, or failed in CI,
// as StartRedis, without a redis-server binary.
func StartRedisCluster(tb testing.TB, masters int) *RedisCluster {
	tb.Helper()
	return &RedisCluster{c: redistest.StartCluster(tb, masters)}
}

// StartReplicatedRedisCluster is StartRedisCluster with a replica for each
// master, for failover tests: a master killed or silent for the node
// timeout (2 s) is replaced by its replica.
func StartReplicatedRedisCluster(tb testing.TB, masters int) *RedisCluster {
	tb.Helper()
	return &RedisCluster{c: redistest.StartReplicatedCluster(tb, masters)}
}

// Addrs are the masters' host:port, as started (a failover may have made
// a replica a master since).
func (c *RedisCluster) Addrs() []string { return c.c.Addrs() }

// Client returns a new cluster client, closed when the test ends. opts
// adjust its options.
func (c *RedisCluster) Client(opts ...func(*redis.ClusterOptions)) *redis.ClusterClient {
	return c.c.Client(opts...)
}

// Masters are the nodes started as masters, to Kill or Restart one.
func (c *RedisCluster) Masters() []*RedisServer { return wrapServers(c.c.Nodes) }

// Replicas are the nodes started as replicas, in the order of Masters;
// none without replication.
func (c *RedisCluster) Replicas() []*RedisServer { return wrapServers(c.c.Replicas) }

func wrapServers(ss []*redistest.Server) []*RedisServer {
	out := make([]*RedisServer, len(ss))
	for i, s := range ss {
		out[i] = &RedisServer{s: s}
	}
	return out
}

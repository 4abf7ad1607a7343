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

package redistest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// SentinelMaster is the name the Sentinel of StartSentinel monitors.
const SentinelMaster = "fxws"

// Sentinel is a master, one replica and one Sentinel watching them: the
// smallest setup in which Redis fails over by itself.
type Sentinel struct {
	tb      testing.TB
	Master  *Server
	Replica *Server
	// Sentinel is the Sentinel process (redis-server --sentinel).
	Sentinel *Server
}

// StartSentinel starts a master, a replica of it and a Sentinel with a
// quorum of one that declares the master down after 500 ms of silence. It
// returns once the replica is in sync and the Sentinel knows it, so that
// a failover can pick it. Everything stops when the test ends.
func StartSentinel(tb testing.TB) *Sentinel {
	tb.Helper()
	s := &Sentinel{tb: tb}
	s.Master = Start(tb)
	s.Replica = Start(tb, "--replicaof", "127.0.0.1", strconv.Itoa(s.Master.Port()),
		"--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0")
	conf := filepath.Join(tb.TempDir(), "sentinel.conf") // Sentinel rewrites it
	body := fmt.Sprintf("sentinel monitor %s 127.0.0.1 %d 1\n"+
		"sentinel down-after-milliseconds %[1]s 500\n"+
		"sentinel failover-timeout %[1]s 5000\n", SentinelMaster, s.Master.Port())
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		tb.Fatalf("redistest: sentinel config: %v", err)
	}
	s.Sentinel = start(tb, conf, "--sentinel")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.ready(ctx); err != nil {
		tb.Fatalf("redistest: sentinel set-up: %v", err)
	}
	return s
}

func (s *Sentinel) ready(ctx context.Context) error {
	replica := redis.NewClient(&redis.Options{Addr: s.Replica.Addr()})
	defer replica.Close()
	sentinel := redis.NewSentinelClient(&redis.Options{Addr: s.Sentinel.Addr()})
	defer sentinel.Close()
	for {
		info, err := replica.Info(ctx, "replication").Result()
		synced := err == nil && strings.Contains(info, "master_link_status:up")
		known := false
		if synced {
			replicas, err := sentinel.Replicas(ctx, SentinelMaster).Result()
			for _, r := range replicas {
				if err == nil && r["flags"] == "slave" && r["port"] == strconv.Itoa(s.Replica.Port()) {
					known = true
				}
			}
		}
		if known {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("replica synced %v, but the sentinel does not know it yet: %w", synced, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Client returns a failover client that finds the master through the
// Sentinel, closed when the test ends.
func (s *Sentinel) Client(opts ...func(*redis.FailoverOptions)) *redis.Client {
	o := &redis.FailoverOptions{MasterName: SentinelMaster, SentinelAddrs: []string{s.Sentinel.Addr()}}
	for _, f := range opts {
		f(o)
	}
	c := redis.NewFailoverClient(o)
	s.tb.Cleanup(func() { _ = c.Close() })
	return c
}

// MasterAddr is the master's host:port as the Sentinel reports it now.
func (s *Sentinel) MasterAddr(ctx context.Context) (string, error) {
	sentinel := redis.NewSentinelClient(&redis.Options{Addr: s.Sentinel.Addr()})
	defer sentinel.Close()
	addr, err := sentinel.GetMasterAddrByName(ctx, SentinelMaster).Result()
	if err != nil {
		return "", err
	}
	if len(addr) != 2 {
		return "", fmt.Errorf("sentinel answered %q for the master's address", addr)
	}
	return addr[0] + ":" + addr[1], nil
}

// Failover asks the Sentinel for a failover without waiting for it: the
// replica is promoted and the master is made a replica of it, as for
// maintenance.
func (s *Sentinel) Failover(ctx context.Context) error {
	sentinel := redis.NewSentinelClient(&redis.Options{Addr: s.Sentinel.Addr()})
	defer sentinel.Close()
	return sentinel.Failover(ctx, SentinelMaster).Err()
}

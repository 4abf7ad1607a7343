package main

import (
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	fxfxtest "go.uber.org/fx/fxtest"
)

func TestReleaseMemoryAfterEnv(t *testing.T) {
	env := func(kv map[string]string) func(string) string { return func(k string) string { return kv[k] } }
	for v, want := range map[string]time.Duration{"": 0, "-1": -time.Millisecond, "2500": 2500 * time.Millisecond} {
		cfg, err := loadConfig(env(map[string]string{"RELEASE_MEMORY_AFTER_MS": v}))
		if err != nil {
			t.Fatalf("RELEASE_MEMORY_AFTER_MS=%q: %v", v, err)
		}
		if cfg.ReleaseMemoryAfter != want || cfg.serverOptions().ReleaseMemoryAfter != want {
			t.Fatalf("RELEASE_MEMORY_AFTER_MS=%q: got %v, want %v", v, cfg.ReleaseMemoryAfter, want)
		}
	}
	for _, v := range []string{"0", "soon"} {
		_, err := loadConfig(env(map[string]string{"RELEASE_MEMORY_AFTER_MS": v}))
		if err == nil || !strings.Contains(err.Error(), "RELEASE_MEMORY_AFTER_MS") {
			t.Fatalf("RELEASE_MEMORY_AFTER_MS=%q: err = %v, want one naming the variable", v, err)
		}
	}
}

// A REDIS_URL with master_name names Sentinels: the client is a failover
// client; any other is a plain one. Neither dials before use.
func TestRedisURLKinds(t *testing.T) {
	for url, want := range map[string]string{
		"redis://127.0.0.1:6379/0":                           "127.0.0.1:6379",
		"redis://127.0.0.1:26379?master_name=mymaster":       "FailoverClient",
		"redis://:secret@127.0.0.1:26379?master_name=m&db=1": "FailoverClient",
	} {
		lc := fxfxtest.NewLifecycle(t)
		c, err := newRedis(lc, config{RedisURL: url})
		if err != nil {
			t.Fatalf("%s: %v", url, err)
		}
		if got := c.(*redis.Client).Options().Addr; got != want {
			t.Errorf("%s: client for %q, want %q", url, got, want)
		}
		lc.RequireStart().RequireStop()
	}
	lc := fxfxtest.NewLifecycle(t)
	if _, err := newRedis(lc, config{RedisURL: "redis://127.0.0.1:26379?master_name=m&bogus=1"}); err == nil || !strings.Contains(err.Error(), "REDIS_URL") {
		t.Fatalf("an unknown parameter: err = %v, want one naming REDIS_URL", err)
	}
}

package main

import (
	"reflect"
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
	// The contract's redis://[:password@]host:port[/db]: password and db
	// reach the client.
	lc := fxfxtest.NewLifecycle(t)
	c, err := newRedis(lc, config{RedisURL: "redis://:pw@127.0.0.1:6380/2"})
	if err != nil {
		t.Fatal(err)
	}
	if o := c.(*redis.Client).Options(); o.Addr != "127.0.0.1:6380" || o.Password != "pw" || o.DB != 2 {
		t.Errorf("redis://:pw@127.0.0.1:6380/2 gave addr %q, password %q, db %d", o.Addr, o.Password, o.DB)
	}
	lc.RequireStart().RequireStop()
	lc = fxfxtest.NewLifecycle(t)
	if _, err := newRedis(lc, config{RedisURL: "redis://127.0.0.1:26379?master_name=m&bogus=1"}); err == nil || !strings.Contains(err.Error(), "REDIS_URL") {
		t.Fatalf("an unknown parameter: err = %v, want one naming REDIS_URL", err)
	}
}

// With nothing set, the demo runs with the contract's defaults
// (demo-contract.md, "Configuration"), and each variable overrides its own.
func TestContractDefaults(t *testing.T) {
	cfg, err := loadConfig(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	want := config{
		Host: "127.0.0.1", Port: "3000", WSPath: "/ws",
		AuthTimeout: 5 * time.Second, HeartbeatInterval: 30 * time.Second, HeartbeatTimeout: 90 * time.Second,
		DefaultRooms: []string{"ws-default", "ws-notification"}, MaxPayloadLength: 131072,
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Fatalf("defaults %+v, want %+v", cfg, want)
	}
	env := map[string]string{
		"HOST": "0.0.0.0", "PORT": "4000", "WS_PATH": "/rt", "REDIS_URL": "redis://:pw@127.0.0.1:6380/2",
		"AUTH_TIMEOUT_MS": "1000", "HEARTBEAT_INTERVAL_MS": "250", "HEARTBEAT_TIMEOUT_MS": "2000",
		"REQUIRE_ENCRYPTION": "1", "DEFAULT_ROOMS": "a,b", "MAX_PAYLOAD_LENGTH": "4096",
	}
	cfg, err = loadConfig(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	want = config{
		Host: "0.0.0.0", Port: "4000", WSPath: "/rt", RedisURL: "redis://:pw@127.0.0.1:6380/2",
		AuthTimeout: time.Second, HeartbeatInterval: 250 * time.Millisecond, HeartbeatTimeout: 2 * time.Second,
		RequireEncryption: true, DefaultRooms: []string{"a", "b"}, MaxPayloadLength: 4096,
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Fatalf("from the environment %+v, want %+v", cfg, want)
	}
}

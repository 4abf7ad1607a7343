package main

import (
	"strings"
	"testing"
	"time"
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

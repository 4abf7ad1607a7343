package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	websocket "github.com/fxws/websocket"
	"github.com/fxws/websocket/helper"
)

// config is the demo's environment (demo-contract.md). An unset or empty
// variable means its default.
type config struct {
	Host              string // HOST, default 127.0.0.1
	Port              string // PORT, default 3000
	WSPath            string // WS_PATH, default /ws
	RedisURL          string // REDIS_URL, empty: in-process broker; with master_name=…, Sentinels
	AuthTimeout       time.Duration
	HeartbeatInterval time.Duration
	HeartbeatTimeout  time.Duration
	RequireEncryption bool     // REQUIRE_ENCRYPTION=1
	DefaultRooms      []string // DEFAULT_ROOMS, comma-separated
	MaxPayloadLength  int      // MAX_PAYLOAD_LENGTH, bytes
	// RELEASE_MEMORY_AFTER_MS (ours, outside the contract): the helper's
	// ReleaseMemoryAfter; negative turns it off, for measuring without it.
	ReleaseMemoryAfter time.Duration
	// PER_MESSAGE_DEFLATE=1 (ours, outside the contract): the helper's
	// PerMessageDeflate, the original's perMessageDeflate.
	PerMessageDeflate bool
	// COMPRESS_MIN_SIZE (ours, outside the contract, with
	// PER_MESSAGE_DEFLATE=1): the helper's CompressMinSize, in bytes.
	CompressMinSize int
}

func loadConfig(getenv func(string) string) (config, error) {
	get := func(k, def string) string {
		if v := strings.TrimSpace(getenv(k)); v != "" {
			return v
		}
		return def
	}
	cfg := config{
		Host:              get("HOST", "127.0.0.1"),
		Port:              get("PORT", "3000"),
		WSPath:            get("WS_PATH", "/ws"),
		RedisURL:          get("REDIS_URL", ""),
		RequireEncryption: get("REQUIRE_ENCRYPTION", "") == "1",
		PerMessageDeflate: get("PER_MESSAGE_DEFLATE", "") == "1",
	}
	var errs []string
	num := func(k, def string) int {
		v := get(k, def)
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			errs = append(errs, fmt.Sprintf("%s=%q is not a positive integer", k, v))
		}
		return n
	}
	ms := func(k, def string) time.Duration { return time.Duration(num(k, def)) * time.Millisecond }
	cfg.AuthTimeout = ms("AUTH_TIMEOUT_MS", "5000")
	cfg.HeartbeatInterval = ms("HEARTBEAT_INTERVAL_MS", "30000")
	cfg.HeartbeatTimeout = ms("HEARTBEAT_TIMEOUT_MS", "90000")
	cfg.MaxPayloadLength = num("MAX_PAYLOAD_LENGTH", "131072")
	if v := get("RELEASE_MEMORY_AFTER_MS", ""); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n == 0 {
			errs = append(errs, fmt.Sprintf("RELEASE_MEMORY_AFTER_MS=%q is not a non-zero integer", v))
		}
		cfg.ReleaseMemoryAfter = time.Duration(n) * time.Millisecond
	}
	if v := get("COMPRESS_MIN_SIZE", ""); v != "" {
		cfg.CompressMinSize = num("COMPRESS_MIN_SIZE", v)
	}
	if p, err := strconv.Atoi(cfg.Port); err != nil || p < 0 || p > 65535 {
		errs = append(errs, fmt.Sprintf("PORT=%q is not a port number", cfg.Port))
	}
	for _, r := range strings.Split(get("DEFAULT_ROOMS", "ws-default,ws-notification"), ",") {
		if r = strings.TrimSpace(r); r != "" {
			cfg.DefaultRooms = append(cfg.DefaultRooms, r)
		}
	}
	if len(errs) > 0 {
		return cfg, fmt.Errorf("configuration: %s", strings.Join(errs, "; "))
	}
	return cfg, nil
}

func (c config) serverOptions() websocket.ServerOptions {
	return websocket.ServerOptions{Options: helper.Options{
		Identifier:         "fxws-demo",
		Path:               c.WSPath,
		DefaultRooms:       c.DefaultRooms,
		AuthTimeout:        c.AuthTimeout,
		HeartbeatInterval:  c.HeartbeatInterval,
		HeartbeatTimeout:   c.HeartbeatTimeout,
		RequireEncryption:  c.RequireEncryption,
		MaxPayloadLength:   c.MaxPayloadLength,
		ReleaseMemoryAfter: c.ReleaseMemoryAfter,
		PerMessageDeflate:  c.PerMessageDeflate,
		CompressMinSize:    c.CompressMinSize,
	}}
}

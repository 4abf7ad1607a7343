package component

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fxws/websocket/helper"
	"github.com/fxws/websocket/internal/blackhole"
	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestOptionsDefaultsAndValidation(t *testing.T) {
	o := Options{}.withDefaults()
	if o.Addr != DefaultAddr || o.ReadHeaderTimeout != DefaultReadHeaderTimeout || o.RedisPingTimeout != DefaultRedisPingTimeout {
		t.Fatalf("defaults %+v", o)
	}
	set := Options{Addr: "127.0.0.1:9", ReadHeaderTimeout: time.Second, RedisPingTimeout: 2 * time.Second}.withDefaults()
	if set.Addr != "127.0.0.1:9" || set.ReadHeaderTimeout != time.Second || set.RedisPingTimeout != 2*time.Second {
		t.Fatalf("set values overridden: %+v", set)
	}
	if err := (Options{}).Validate(); err != nil {
		t.Fatalf("zero options: %v", err)
	}
	bad := Options{
		Options:           helper.Options{HeartbeatTimeout: -1},
		Addr:              "no-port",
		ReadHeaderTimeout: -1,
		RedisPingTimeout:  -1,
	}
	err := bad.Validate()
	for _, want := range []string{"HeartbeatTimeout", "Addr", "ReadHeaderTimeout", "RedisPingTimeout"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate does not report %s: %v", want, err)
		}
	}
}

func TestMountConflictIsAnError(t *testing.T) {
	mux := http.NewServeMux()
	h := http.NotFoundHandler()
	if err := mount(mux, "/ws", h); err != nil {
		t.Fatal(err)
	}
	if err := mount(mux, "/ws", h); err == nil || !strings.Contains(err.Error(), keyMux) {
		t.Fatalf("second mount: %v", err)
	}
}

// TestPingRedisBounded: an unreachable Redis fails the ping with an error
// naming the binding; a Redis that never answers is cut by the timeout.
func TestPingRedisBounded(t *testing.T) {
	refused := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1})
	defer refused.Close()
	s := &server{redis: refused, opts: Options{RedisPingTimeout: time.Second}, log: zap.NewNop()}
	if err := s.pingRedis(context.Background()); err == nil || !strings.Contains(err.Error(), keyRedis) {
		t.Fatalf("refused: %v", err)
	}

	// A server that accepts and stays silent.
	silent := blackhole.New(t).Addr()
	mute := redis.NewClient(&redis.Options{Addr: silent, MaxRetries: -1, ReadTimeout: -1})
	defer mute.Close()
	s = &server{redis: mute, opts: Options{RedisPingTimeout: 100 * time.Millisecond}, log: zap.NewNop()}
	err := s.pingRedis(context.Background())
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("silent Redis: %v", err)
	}
}

// net/http's error log reaches the module's logger at warn (found in an
// operations trial: every line was dropped, a server out of descriptors
// said nothing).
func TestHTTPErrorLogReachesTheLogger(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	HTTPErrorLog(zap.New(core).WithOptions(zap.IncreaseLevel(zap.WarnLevel))).Printf("http: Accept error: %v", "too many open files")
	if got := logs.FilterMessageSnippet("too many open files").All(); len(got) != 1 || got[0].Level != zapcore.WarnLevel {
		t.Fatalf("lines %+v, want one at warn", logs.All())
	}
}

// A flood of bad TLS connections, or accepts failing for want of
// descriptors, logs one line a second of each, not one per connection
// (from a TLS deployment trial); other lines all go through.
func TestHTTPErrorLogKeepsFloodsToALineASecond(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	l := HTTPErrorLog(zap.New(core))
	for i := range 100 {
		l.Printf("http: TLS handshake error from 127.0.0.1:%d: EOF", 40000+i)
		l.Printf("http: Accept error: accept tcp: too many open files; retrying in 5ms")
		l.Printf("http: panic serving 127.0.0.1:%d: boom", 40000+i)
	}
	if n := logs.FilterMessageSnippet("TLS handshake error").Len(); n != 1 {
		t.Errorf("%d handshake error lines for 100 in a row, want 1", n)
	}
	if n := logs.FilterMessageSnippet("Accept error").Len(); n != 1 {
		t.Errorf("%d accept error lines for 100 in a row, want 1", n)
	}
	if n := logs.FilterMessageSnippet("panic serving").Len(); n != 100 {
		t.Errorf("%d panic lines of 100, want all", n)
	}
}

package main

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/pprof"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strings"

	"github.com/fxws/websocket/helper"
	"go.uber.org/fx"
	"go.uber.org/zap"
)

// debugOption serves, when DEMO_DEBUG_ADDR is set (opt-in; not part of the
// demo contract), /debug/vars (goroutines, Go heap, the helper's Stats as
// JSON; ?gc=1 collects first) and /debug/pprof/ on that address, for load and fault labs
// (cmd/fxws-lab) that need more than /proc shows.
func debugOption(addr string) fx.Option {
	if addr == "" {
		return fx.Options()
	}
	return fx.Invoke(func(lc fx.Lifecycle, log *zap.Logger, h *helper.WebSocketServerHelper) {
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/vars", func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Query().Get("gc") == "1" {
				// Collect and return freed memory to the OS first, to tell
				// garbage not yet collected from memory still held.
				debug.FreeOSMemory()
			}
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]any{
				"goroutines": runtime.NumGoroutine(),
				"heapInuse":  ms.HeapInuse,
				"heapSys":    ms.HeapSys,
				"memStats":   ms,
				"stats":      h.Stats(),
				"memClasses": memoryClasses(),
			})
		})
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		srv := &http.Server{Handler: mux}
		lc.Append(fx.Hook{
			OnStart: func(context.Context) error {
				ln, err := net.Listen("tcp", addr)
				if err != nil {
					return err
				}
				go func() {
					if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
						log.Warn("demo: debug listener", zap.Error(err))
					}
				}()
				return nil
			},
			OnStop: srv.Shutdown,
		})
	})
}

// memoryClasses reads the runtime's /memory/classes/ metrics: every byte the
// Go runtime maps, split by what it holds (objects, free heap, stacks, GC
// metadata, profiling buckets, ...), which MemStats only gives in sums.
func memoryClasses() map[string]uint64 {
	var samples []metrics.Sample
	for _, d := range metrics.All() {
		if strings.HasPrefix(d.Name, "/memory/classes/") && d.Kind == metrics.KindUint64 {
			samples = append(samples, metrics.Sample{Name: d.Name})
		}
	}
	metrics.Read(samples)
	out := make(map[string]uint64, len(samples))
	for _, s := range samples {
		out[strings.TrimSuffix(strings.TrimPrefix(s.Name, "/memory/classes/"), ":bytes")] = s.Value.Uint64()
	}
	return out
}

package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

func runChurn(ctx context.Context, c config, bin string) (map[string]any, error) {
	s, err := startDemo(ctx, bin, c.cpu)
	if err != nil {
		return nil, err
	}
	defer s.stop()
	time.Sleep(2 * time.Second)
	base, err := s.vars()
	if err != nil {
		return nil, fmt.Errorf("debug vars: %w", err)
	}
	rssBase := rssBytes(s.pid())
	partsBase := rssParts(s.pid())
	d := c.dur(30 * time.Second)
	cctx, cstop := context.WithTimeout(ctx, d)
	defer cstop()
	var cycles, errs atomic.Int64
	var emu sync.Mutex
	kinds := map[string]int{}
	fail := func(what string, err error) {
		errs.Add(1)
		emu.Lock()
		kinds[what+": "+outcome(err)]++
		emu.Unlock()
	}
	smp := sample(s.pid())
	var wg sync.WaitGroup
	n := c.n(c.churners)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Spread the first connections over a second.
			time.Sleep(time.Duration(i) * time.Second / time.Duration(n))
			for cctx.Err() == nil {
				cl, err := dial(ctx, s.wsURL())
				if err != nil {
					fail("dial", err)
					time.Sleep(100 * time.Millisecond)
					continue
				}
				if err := cl.authenticate(fmt.Sprintf("c%d", i)); err != nil {
					fail("authenticate", err)
					cl.conn.Close()
					continue
				}
				rooms := fmt.Sprintf(`["public-a","public-b","public-%d"]`, i%50)
				if err := cl.send([]byte(`{"event":"join","data":{"rooms":` + rooms + `}}`)); err != nil {
					fail("join", err)
					cl.conn.Close()
					continue
				}
				if err := cl.send([]byte(`{"event":"leave","data":{"rooms":` + rooms + `}}`)); err != nil {
					fail("leave", err)
					cl.conn.Close()
					continue
				}
				if err := cl.closeNormally(); err != nil {
					fail("close", err)
					continue
				}
				cycles.Add(1)
			}
		}()
	}
	wg.Wait()
	peak, cpu := smp.stop()
	time.Sleep(c.idle)
	left, _ := s.clientCount()
	after, err := s.vars()
	if err != nil {
		return nil, err
	}
	rssAfter := rssBytes(s.pid())
	// The same after a forced collection: what is still held rather than
	// garbage the runtime had no reason to collect while idle.
	gc, err := s.varsAfterGC()
	if err != nil {
		return nil, err
	}
	rssGC := rssBytes(s.pid())
	partsGC := rssParts(s.pid())
	if c.heapOut != "" {
		if err := s.saveHeapProfile(c.heapOut); err != nil {
			return nil, err
		}
	}
	return map[string]any{
		"churners": n, "duration_s": d.Seconds(), "idle_s": c.idle.Seconds(),
		"cycles":                   cycles.Load(),
		"cycles_per_s":             round2(float64(cycles.Load()) / d.Seconds()),
		"errors":                   errs.Load(),
		"error_kinds":              kinds,
		"clients_left":             left,
		"goroutines_base":          base.Goroutines,
		"goroutines_after_idle":    after.Goroutines,
		"rss_base_MiB":             round2(mib(rssBase)),
		"rss_peak_MiB":             round2(mib(peak)),
		"rss_after_idle_MiB":       round2(mib(rssAfter)),
		"rss_after_vs_base_pct":    round2(100 * float64(rssAfter-rssBase) / float64(rssBase)),
		"heap_inuse_after_MiB":     round2(mib(int64(after.HeapInuse))),
		"rss_after_gc_MiB":         round2(mib(rssGC)),
		"rss_after_gc_vs_base_pct": round2(100 * float64(rssGC-rssBase) / float64(rssBase)),
		"heap_inuse_after_gc_MiB":  round2(mib(int64(gc.HeapInuse))),
		"rss_parts_base":           partsBase,
		"rss_parts_after_gc":       partsGC,
		"mem_classes_growth_KiB":   classGrowth(base.MemClasses, gc.MemClasses),
		"runtime_base":             base.MemStats,
		"runtime_after_gc":         gc.MemStats,
		"goroutines_after_gc":      gc.Goroutines,
		"server_cpu_cores":         round2(cpu),
		"server_alive":             s.alive(),
	}, nil
}

// classGrowth is how much each of the runtime's memory classes grew from
// base to after, in KiB, for the classes that changed by 4 KiB or more.
func classGrowth(base, after map[string]uint64) map[string]int64 {
	out := map[string]int64{}
	for k, v := range after {
		if d := (int64(v) - int64(base[k])) / 1024; d >= 4 || d <= -4 {
			out[k] = d
		}
	}
	return out
}

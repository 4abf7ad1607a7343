package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
)

// slowRun is one run of the slow-consumer scenario.
type slowRun struct {
	rssBase, rssEnd, rssPeak int64
	cpu                      float64
	lat                      latencies
	missing, expected        int
	healthy                  int
	dropped                  any
	alive                    bool
}

func runSlow(ctx context.Context, c config, bin string) (map[string]any, error) {
	withSlow, err := slowOnce(ctx, c, bin, c.n(c.slow))
	if err != nil {
		return nil, err
	}
	clean, err := slowOnce(ctx, c, bin, 0)
	if err != nil {
		return nil, err
	}
	slow := c.n(c.slow)
	bound := int64(slow) * int64(c.bpLimit)
	growth := withSlow.rssEnd - withSlow.rssBase
	res := map[string]any{
		"clients": c.n(c.clients), "slow_clients": slow, "rate_per_s": c.rate, "size_bytes": c.size,
		"duration_s":             c.dur(30 * time.Second).Seconds(),
		"rss_base_MiB":           round2(mib(withSlow.rssBase)),
		"rss_growth_MiB":         round2(mib(growth)),
		"rss_peak_growth_MiB":    round2(mib(withSlow.rssPeak - withSlow.rssBase)),
		"bound_limit_x_slow_MiB": round2(mib(bound)),
		"rss_growth_over_bound":  round2(float64(growth) / float64(max(bound, 1))),
		"clean_rss_growth_MiB":   round2(mib(clean.rssEnd - clean.rssBase)),
		"healthy_p50_ms":         round2(withSlow.lat.quantile(0.5)),
		"healthy_p99_ms":         round2(withSlow.lat.quantile(0.99)),
		"clean_p50_ms":           round2(clean.lat.quantile(0.5)),
		"clean_p99_ms":           round2(clean.lat.quantile(0.99)),
		"p99_ratio_vs_clean":     round2(withSlow.lat.quantile(0.99) / max(clean.lat.quantile(0.99), 0.001)),
		"healthy_missing":        withSlow.missing,
		"healthy_expected":       withSlow.expected,
		"clean_missing":          clean.missing,
		"server_cpu_cores":       round2(withSlow.cpu),
		"clean_server_cpu_cores": round2(clean.cpu),
		"dropped_backpressure":   withSlow.dropped,
		"server_alive":           withSlow.alive,
	}
	return res, nil
}

func slowOnce(ctx context.Context, c config, bin string, slow int) (*slowRun, error) {
	// Heartbeat timeout well past the run: slow clients heartbeat anyway.
	s, err := startDemo(ctx, bin, c.cpu)
	if err != nil {
		return nil, err
	}
	defer s.stop()
	n := c.n(c.clients)
	type rc struct {
		c       *wsClient
		slow    bool
		mu      sync.Mutex
		lat     latencies
		seen    []bool // by seq
		measure bool
	}
	clients := make([]*rc, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 50)
	for i := range clients {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			cl, err := dial(ctx, s.wsURL())
			if err != nil {
				errs <- err
				return
			}
			if err := cl.authenticate(fmt.Sprintf("u%d", i)); err != nil {
				errs <- err
				return
			}
			clients[i] = &rc{c: cl, slow: i < slow}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		return nil, fmt.Errorf("connect: %w", err)
	}
	defer func() {
		for _, r := range clients {
			r.c.conn.Close()
		}
	}()
	stopSlow := make(chan struct{})
	for _, r := range clients {
		go func() {
			for {
				if r.slow {
					select {
					case <-stopSlow:
						// Stop reading; heartbeat every 5 s until the end.
						t := time.NewTicker(5 * time.Second)
						for {
							if r.c.send([]byte(`{"event":"heartbeat"}`)) != nil {
								return
							}
							<-t.C
						}
					default:
					}
				}
				p, err := r.c.next()
				if err != nil {
					return
				}
				if !bytes.HasPrefix(p, []byte(`{"event":"lab"`)) {
					continue
				}
				at := nowUS()
				t, ok1 := intField(p, "t")
				seq, ok2 := intField(p, "s")
				if !ok1 || !ok2 {
					continue
				}
				r.mu.Lock()
				if r.measure {
					r.lat = append(r.lat, at-t)
				}
				for int64(len(r.seen)) <= seq {
					r.seen = append(r.seen, false)
				}
				r.seen[seq] = true
				r.mu.Unlock()
			}
		}()
	}
	pub := &publisher{origin: "A", srv: s, http: &http.Client{Timeout: 10 * time.Second}}
	pad := strings.Repeat("x", max(0, c.size-60))
	pctx, pstop := context.WithCancel(ctx)
	var pwg sync.WaitGroup
	pwg.Add(1)
	go func() { defer pwg.Done(); pub.run(pctx, time.Second/time.Duration(c.rate), pad) }()

	time.Sleep(c.dur(5 * time.Second)) // warm-up: everyone reads
	close(stopSlow)
	time.Sleep(200 * time.Millisecond)
	pub.mu.Lock()
	firstSeq := len(pub.sentAt)
	pub.mu.Unlock()
	for _, r := range clients {
		r.mu.Lock()
		r.measure = true
		r.mu.Unlock()
	}
	run := &slowRun{rssBase: rssBytes(s.pid())}
	smp := sample(s.pid())
	time.Sleep(c.dur(30 * time.Second))
	pub.mu.Lock()
	lastSeq := len(pub.sentAt)
	pub.mu.Unlock()
	run.rssEnd = rssBytes(s.pid())
	run.rssPeak, run.cpu = smp.stop()
	pstop()
	pwg.Wait()
	time.Sleep(2 * time.Second) // drain
	for _, r := range clients {
		if r.slow {
			continue
		}
		run.healthy++
		r.mu.Lock()
		run.lat = append(run.lat, r.lat...)
		for seq := firstSeq; seq < lastSeq; seq++ {
			run.expected++
			if seq >= len(r.seen) || !r.seen[seq] {
				run.missing++
			}
		}
		r.mu.Unlock()
	}
	if v, err := s.vars(); err == nil {
		run.dropped = v.Stats["DroppedBackpressure"]
	}
	run.alive = s.alive()
	return run, nil
}

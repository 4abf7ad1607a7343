package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"
)

// result is one measured run, printed as one JSON line. Fields that do not
// apply to a scenario are left out.
type result struct {
	Scenario string   `json:"scenario"`
	Label    string   `json:"label,omitempty"`
	Case     string   `json:"case,omitempty"`
	Rep      int      `json:"rep,omitempty"`
	URLs     []string `json:"urls"`
	Clients  int      `json:"clients"`
	Procs    int      `json:"procs"`
	Sources  int      `json:"sources,omitempty"`
	Time     string   `json:"time"`

	Connected      int            `json:"connected"`
	ConnectFailed  int            `json:"connect_failed"`
	ConnectErrors  map[string]int `json:"connect_errors,omitempty"`
	ConnectSec     float64        `json:"connect_s"`
	ConnectPerSec  float64        `json:"connect_per_s"`
	CPUPerConnUs   float64        `json:"server_cpu_per_connect_us,omitempty"`
	RSSBefore      int64          `json:"server_rss_before,omitempty"`
	RSSAfter       int64          `json:"server_rss_after,omitempty"`
	RSSPerConn     float64        `json:"server_rss_per_conn_b,omitempty"`
	RSSMid         int64          `json:"server_rss_mid,omitempty"`
	MarginalConns  int            `json:"marginal_conns,omitempty"`
	RSSMarginal    float64        `json:"server_rss_marginal_per_conn_b,omitempty"`
	HoldSec        float64        `json:"hold_s,omitempty"`
	LiveAtEnd      int64          `json:"live_at_end"`
	Dropped        int64          `json:"dropped"`
	Closes         map[string]int `json:"closes,omitempty"`
	Via            string         `json:"via,omitempty"`
	Rate           float64        `json:"rate,omitempty"`
	Size           int            `json:"size,omitempty"`
	Rooms          int            `json:"rooms,omitempty"`
	DurationSec    float64        `json:"duration_s,omitempty"`
	Published      int64          `json:"published,omitempty"`
	PublishErrors  int64          `json:"publish_errors,omitempty"`
	PublishLagged  int64          `json:"publish_lagged,omitempty"`
	PublishLagP99  float64        `json:"publish_lag_p99_ms,omitempty"`
	Expected       int64          `json:"expected,omitempty"`
	Delivered      int64          `json:"delivered,omitempty"`
	Missing        int64          `json:"missing,omitempty"`
	Duplicates     int64          `json:"duplicates,omitempty"`
	DecryptErrors  int64          `json:"decrypt_errors,omitempty"`
	OpaqueClients  int            `json:"opaque_clients,omitempty"`
	WindowSec      float64        `json:"window_s,omitempty"`
	DeliveredPerS  float64        `json:"delivered_per_s,omitempty"`
	RoundTrips     int64          `json:"round_trips,omitempty"`
	RoundTripsPerS float64        `json:"round_trips_per_s,omitempty"`
	LatP50         float64        `json:"lat_p50_ms,omitempty"`
	LatP90         float64        `json:"lat_p90_ms,omitempty"`
	LatP99         float64        `json:"lat_p99_ms,omitempty"`
	LatMax         float64        `json:"lat_max_ms,omitempty"`
	PerInstance    []instanceLat  `json:"per_instance,omitempty"`
	ServerCPUSec   float64        `json:"server_cpu_s,omitempty"`
	ServerCPUPct   float64        `json:"server_cpu_pct,omitempty"`
	CPUPerMsgUs    float64        `json:"server_cpu_per_msg_us,omitempty"`
	LoadCPUPct     float64        `json:"load_cpu_pct,omitempty"`
	Notes          []string       `json:"notes,omitempty"`
}

type instanceLat struct {
	URL    string  `json:"url"`
	Count  uint64  `json:"count"`
	LatP50 float64 `json:"lat_p50_ms"`
	LatP99 float64 `json:"lat_p99_ms"`
}

func ms(us uint64) float64 { return round(float64(us)/1000, 3) }

// summary prints a short human version of the result.
func (r *result) summary(w io.Writer) {
	lbl := r.Label
	if lbl != "" {
		lbl = " [" + lbl + "]"
	}
	fmt.Fprintf(w, "\n%s%s: %d/%d connected (%.0f/s, %d failed)", r.Scenario, lbl, r.Connected, r.Clients, r.ConnectPerSec, r.ConnectFailed)
	if r.CPUPerConnUs > 0 {
		fmt.Fprintf(w, ", server CPU %.1f µs/connect", r.CPUPerConnUs)
	}
	if r.RSSPerConn != 0 {
		fmt.Fprintf(w, ", server RSS %.2f KB/conn", r.RSSPerConn/1024)
	}
	fmt.Fprintln(w)
	if r.Expected > 0 {
		fmt.Fprintf(w, "  delivered %d of %d (missing %d, dup %d) at %.0f msg/s; latency p50 %.2f p90 %.2f p99 %.2f max %.2f ms\n",
			r.Delivered, r.Expected, r.Missing, r.Duplicates, r.DeliveredPerS, r.LatP50, r.LatP90, r.LatP99, r.LatMax)
	}
	if r.RoundTrips > 0 {
		fmt.Fprintf(w, "  %d round trips, %.0f/s; latency p50 %.3f p99 %.3f ms\n", r.RoundTrips, r.RoundTripsPerS, r.LatP50, r.LatP99)
	}
	if r.CPUPerMsgUs > 0 {
		fmt.Fprintf(w, "  server CPU %.2f µs per delivered message/round trip (%.0f%% of a core); load CPU %.0f%%\n", r.CPUPerMsgUs, r.ServerCPUPct, r.LoadCPUPct)
	}
	if len(r.ConnectErrors) > 0 {
		fmt.Fprintf(w, "  connect errors: %v\n", r.ConnectErrors)
	}
	if r.Dropped > 0 {
		fmt.Fprintf(w, "  %d connections dropped by the server: %v\n", r.Dropped, r.Closes)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "  note: %s\n", n)
	}
}

// fleet is the set of workers of a run.
type fleet struct {
	cfg     config
	workers []workerAPI
	local   []*worker
}

func newFleet(cfg config) (*fleet, error) {
	srcs, err := sourceAddrs(cfg.srcBase, cfg.sources)
	if err != nil {
		return nil, err
	}
	f := &fleet{cfg: cfg}
	per := (cfg.n + cfg.procs - 1) / cfg.procs
	for p := 0; p < cfg.procs; p++ {
		first := cfg.first + p*per
		count := min(per, cfg.first+cfg.n-first)
		if count <= 0 {
			break
		}
		spec := workerSpec{
			URLs: cfg.urls, APIs: cfg.apis, Sources: srcs, First: first, Count: count,
			Rooms: cfg.rooms, Encrypted: cfg.scenario == "encrypted", Echo: cfg.scenario == "echo",
			EchoInflight: cfg.inflight, Deflate: cfg.deflate, Size: cfg.size, Heartbeat: cfg.heartbeat,
			DialConcurrency: cfg.dialConcurrency, ConnectTimeout: cfg.connectTimeout,
		}
		if cfg.procs == 1 {
			w := newWorker(spec)
			f.local = append(f.local, w)
			f.workers = append(f.workers, &localWorker{w: w})
			continue
		}
		rw, err := spawnWorker(spec)
		if err != nil {
			f.close()
			return nil, err
		}
		f.workers = append(f.workers, rw)
	}
	return f, nil
}

// loadPids is this process and its load processes.
func (f *fleet) loadPids() pidSet {
	ps := pidSet{os.Getpid()}
	for _, w := range f.workers {
		if p := w.pid(); p > 0 {
			ps = append(ps, p)
		}
	}
	return ps
}

func (f *fleet) progress() (progressReport, error) {
	var t progressReport
	for _, w := range f.workers {
		p, err := w.progress()
		if err != nil {
			return t, err
		}
		t.Connected += p.Connected
		t.Failed += p.Failed
		t.Live += p.Live
		t.Received += p.Received
		t.Dups += p.Dups
		t.Echoes += p.Echoes
		t.LastRecv = max(t.LastRecv, p.LastRecv)
	}
	return t, nil
}

// connect brings every client up, printing progress, and fills r.
func (f *fleet) connect(ctx context.Context, r *result) error {
	start := time.Now()
	for _, w := range f.workers {
		w.beginConnect()
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		p, err := f.progress()
		if err != nil {
			return err
		}
		el := time.Since(start).Seconds()
		progressf("connecting: %d/%d up, %d failed, %.0f/s", p.Connected, f.cfg.n, p.Failed, float64(p.Connected)/el)
		if int(p.Connected+p.Failed) >= f.cfg.n || ctx.Err() != nil {
			break
		}
		<-tick.C
	}
	progressDone()
	r.ConnectErrors = map[string]int{}
	var elapsedMs float64
	for _, w := range f.workers {
		rep, err := w.waitConnect()
		if err != nil {
			return err
		}
		r.Connected += rep.OK
		r.ConnectFailed += rep.Failed
		elapsedMs = max(elapsedMs, rep.ElapsedMs)
		for k, v := range rep.Errors {
			r.ConnectErrors[k] += v
		}
	}
	r.ConnectSec = round(elapsedMs/1000, 3)
	if r.ConnectSec > 0 {
		r.ConnectPerSec = round(float64(r.Connected)/r.ConnectSec, 1)
	}
	if r.Connected == 0 {
		return fmt.Errorf("no client connected: %v", r.ConnectErrors)
	}
	return ctx.Err()
}

func (f *fleet) start() error {
	for _, w := range f.workers {
		if err := w.start(); err != nil {
			return err
		}
	}
	return nil
}

func (f *fleet) stop(expected []int64) (measureReport, error) {
	var t measureReport
	t.Closes = map[string]int{}
	for _, w := range f.workers {
		m, err := w.stop(expected)
		if err != nil {
			return t, err
		}
		t.Received += m.Received
		t.Dups += m.Dups
		t.Missing += m.Missing
		t.DecryptErrors += m.DecryptErrors
		t.Echoes += m.Echoes
		t.Live += m.Live
		t.Dropped += m.Dropped
		t.Opaque += m.Opaque
		t.LastRecv = max(t.LastRecv, m.LastRecv)
		for k, v := range m.Closes {
			t.Closes[k] += v
		}
		for i, h := range m.Lat {
			for len(t.Lat) <= i {
				t.Lat = append(t.Lat, histSnap{})
			}
			t.Lat[i].merge(h)
		}
	}
	return t, nil
}

func (f *fleet) close() {
	for _, w := range f.workers {
		if err := w.close(); err != nil {
			fmt.Fprintln(os.Stderr, "fxws-bench: close:", err)
		}
	}
}

// cpuMeter measures the CPU of a set of processes over a window.
type cpuMeter struct {
	ps    pidSet
	cpu0  time.Duration
	wall0 time.Time
}

func startCPU(ps pidSet) (*cpuMeter, error) {
	c, err := ps.cpu()
	return &cpuMeter{ps: ps, cpu0: c, wall0: time.Now()}, err
}

// stop returns CPU seconds used and the share of one core.
func (m *cpuMeter) stop() (float64, float64, error) {
	c, err := m.ps.cpu()
	if err != nil {
		return 0, 0, err
	}
	used := (c - m.cpu0).Seconds()
	return used, 100 * used / time.Since(m.wall0).Seconds(), nil
}

func run(ctx context.Context, cfg config) (*result, error) {
	r := &result{
		Scenario: cfg.scenario, Label: cfg.label, Case: cfg.caseName, Rep: cfg.rep, URLs: cfg.urls, Clients: cfg.n,
		Procs: cfg.procs, Sources: cfg.sources, Time: time.Now().UTC().Format(time.RFC3339),
	}
	for _, p := range cfg.serverPids {
		if _, err := procCPU(p); err != nil {
			return nil, err
		}
	}
	if cfg.scenario == "conns" {
		return r, runConns(ctx, cfg, r)
	}
	f, err := newFleet(cfg)
	if err != nil {
		return nil, err
	}
	defer f.close()
	switch cfg.scenario {
	case "echo":
		err = runEcho(ctx, f, r)
	default:
		err = runPublish(ctx, f, r)
	}
	return r, err
}

// runConns connects the clients in two halves, each followed by a hold,
// and samples the server's RSS before, between and after. (after − before)
// / n is the memory per connection as first published; (after − between)
// / (second half) is the marginal cost of one more connection, which a
// fixed cost (what a cold server allocates once on its first connections)
// does not distort.
func runConns(ctx context.Context, cfg config, r *result) error {
	var halves []*fleet
	if len(cfg.serverPids) == 0 || cfg.n < 2 {
		f, err := newFleet(cfg)
		if err != nil {
			return err
		}
		defer f.close()
		halves = []*fleet{f}
	} else {
		a, b := cfg, cfg
		a.n = cfg.n / 2
		b.n, b.first = cfg.n-a.n, cfg.first+a.n
		fa, err := newFleet(a)
		if err != nil {
			return err
		}
		defer fa.close()
		fb, err := newFleet(b)
		if err != nil {
			return err
		}
		defer fb.close()
		halves = []*fleet{fa, fb}
	}
	var err error
	if len(cfg.serverPids) > 0 {
		if r.RSSBefore, err = cfg.serverPids.rss(); err != nil {
			return err
		}
	}
	var cpu, connectSec float64
	var cpuConns int
	var live int64
	r.ConnectErrors = map[string]int{}
	for i, h := range halves {
		cm, err := startCPU(cfg.serverPids)
		if err != nil {
			return err
		}
		var hr result
		cerr := h.connect(ctx, &hr)
		r.Connected += hr.Connected
		r.ConnectFailed += hr.ConnectFailed
		for k, v := range hr.ConnectErrors {
			r.ConnectErrors[k] += v
		}
		if cerr != nil {
			return cerr
		}
		used, _, err := cm.stop()
		if err != nil {
			return err
		}
		// With two halves, CPU per connect is the second's: the first
		// carries what a cold server does once (compiling, growing pools).
		if len(halves) == 1 || i == 1 {
			cpu, cpuConns = used, hr.Connected
		}
		connectSec += hr.ConnectSec
		hold := time.Now()
		for time.Since(hold) < cfg.hold && ctx.Err() == nil {
			p, err := h.progress()
			if err != nil {
				return err
			}
			progressf("holding: %d live, %.0fs left", live+p.Live, (cfg.hold - time.Since(hold)).Seconds())
			sleepCtx(ctx, min(500*time.Millisecond, cfg.hold-time.Since(hold)))
		}
		progressDone()
		r.HoldSec = round(time.Since(hold).Seconds(), 2)
		p, err := h.progress()
		if err != nil {
			return err
		}
		live += p.Live
		if len(cfg.serverPids) > 0 && i == 0 && len(halves) == 2 {
			if r.RSSMid, err = cfg.serverPids.rss(); err != nil {
				return err
			}
		}
		if len(halves) == 2 && i == 1 {
			r.MarginalConns = hr.Connected
		}
	}
	if r.Connected == 0 {
		return fmt.Errorf("no client connected: %v", r.ConnectErrors)
	}
	r.ConnectSec = round(connectSec, 3)
	if connectSec > 0 {
		r.ConnectPerSec = round(float64(r.Connected)/connectSec, 1)
	}
	if len(cfg.serverPids) > 0 {
		if cpuConns > 0 {
			r.CPUPerConnUs = round(cpu*1e6/float64(cpuConns), 2)
		}
		if r.RSSAfter, err = cfg.serverPids.rss(); err != nil {
			return err
		}
		r.RSSPerConn = round(float64(r.RSSAfter-r.RSSBefore)/float64(r.Connected), 1)
		if r.MarginalConns > 0 {
			r.RSSMarginal = round(float64(r.RSSAfter-r.RSSMid)/float64(r.MarginalConns), 1)
		}
	}
	for _, h := range halves {
		m, err := h.stop(nil)
		if err != nil {
			return err
		}
		r.LiveAtEnd += m.Live
		r.Dropped += m.Dropped
		for k, v := range m.Closes {
			if r.Closes == nil {
				r.Closes = map[string]int{}
			}
			r.Closes[k] += v
		}
	}
	return ctx.Err()
}

func runEcho(ctx context.Context, f *fleet, r *result) error {
	cfg := f.cfg
	if err := f.connect(ctx, r); err != nil {
		return err
	}
	sleepCtx(ctx, cfg.settle)
	lm, _ := startCPU(f.loadPids())
	cm, err := startCPU(cfg.serverPids)
	if err != nil {
		return err
	}
	start := time.Now()
	if err := f.start(); err != nil {
		return err
	}
	for time.Since(start) < cfg.duration && ctx.Err() == nil {
		sleepCtx(ctx, min(500*time.Millisecond, cfg.duration-time.Since(start)))
		p, err := f.progress()
		if err != nil {
			return err
		}
		progressf("echo: %d round trips, %.0f/s", p.Echoes, float64(p.Echoes)/time.Since(start).Seconds())
	}
	m, err := f.stop(nil)
	if err != nil {
		return err
	}
	window := time.Since(start).Seconds()
	used, pct, err := cm.stop()
	if err != nil {
		return err
	}
	_, lpct, _ := lm.stop()
	progressDone()
	r.DurationSec = round(window, 3)
	r.Size = cfg.size
	r.RoundTrips = m.Echoes
	r.RoundTripsPerS = round(float64(m.Echoes)/window, 1)
	r.fillLatency(m, cfg, 0)
	r.LiveAtEnd, r.Dropped, r.Closes = m.Live, m.Dropped, m.Closes
	r.LoadCPUPct = round(lpct, 1)
	if len(cfg.serverPids) > 0 && m.Echoes > 0 {
		r.ServerCPUSec, r.ServerCPUPct = round(used, 3), round(pct, 1)
		r.CPUPerMsgUs = round(used*1e6/float64(m.Echoes), 3)
	}
	if lpct > 90 {
		r.Notes = append(r.Notes, "load processes near one full core: figures may be bounded by the load, not the server")
	}
	return ctx.Err()
}

func runPublish(ctx context.Context, f *fleet, r *result) error {
	cfg := f.cfg
	var pub publisher
	if cfg.via == "redis" {
		rp, err := newRedisPublisher(ctx, cfg.redisURL)
		if err != nil {
			return err
		}
		pub = rp
	} else {
		pub = newRESTPublisher(cfg.apis[0])
	}
	defer pub.close()
	r.Via, r.Rate, r.Size, r.Rooms = cfg.via, cfg.rate, cfg.size, cfg.rooms
	if err := f.connect(ctx, r); err != nil {
		return err
	}
	pr := &pubRun{pub: pub, rooms: cfg.rooms, rate: cfg.rate, duration: cfg.duration, size: cfg.size, textPad: cfg.textPad}
	for _, w := range f.local {
		w.sendTimes = pr.sendTime
	}
	sleepCtx(ctx, cfg.settle)
	if err := f.start(); err != nil {
		return err
	}
	lm, _ := startCPU(f.loadPids())
	cm, err := startCPU(cfg.serverPids)
	if err != nil {
		return err
	}
	start := time.Now()
	done := make(chan struct{})
	go func() { pr.run(ctx); close(done) }()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	publishing := true
	var lastCount int64 = -1
	lastChange := time.Now()
	for ctx.Err() == nil {
		select {
		case <-done:
			publishing = false
			done = nil
		case <-tick.C:
		}
		p, err := f.progress()
		if err != nil {
			return err
		}
		var want int64
		exp := pr.expected()
		// Clients are spread round-robin over rooms, so each room has
		// about n/rooms members.
		for room, e := range exp {
			want += e * int64(membersOf(room, cfg.n, len(exp)))
		}
		el := time.Since(start).Seconds()
		phase := "publishing"
		if !publishing {
			phase = "draining"
		}
		progressf("%s: %.0fs, delivered %d of %d (%.0f/s), dup %d", phase, el, p.Received, want, float64(p.Received)/el, p.Dups)
		if p.Received != lastCount {
			lastCount, lastChange = p.Received, time.Now()
		}
		if !publishing && (p.Received >= want || time.Since(lastChange) > cfg.drain || time.Since(start) > cfg.duration+cfg.drainMax) {
			break
		}
	}
	progressDone()
	exp := pr.expected()
	m, err := f.stop(exp)
	if err != nil {
		return err
	}
	used, _, err := cm.stop()
	if err != nil {
		return err
	}
	_, lpct, _ := lm.stop()
	for _, e := range exp {
		r.Published += e
	}
	// Per connected client, what its room got published (dropped clients
	// count as missing what they did not get).
	r.Expected = m.Received + m.Missing
	r.PublishErrors, r.PublishLagged = pr.errors.Load(), pr.lagged.Load()
	r.Delivered, r.Duplicates, r.Missing, r.DecryptErrors = m.Received, m.Dups, m.Missing, m.DecryptErrors
	r.OpaqueClients = m.Opaque
	r.DurationSec = round(cfg.duration.Seconds(), 3)
	// The delivery window runs from the first publish to the last arrival.
	window := time.Since(start).Seconds()
	if m.LastRecv > 0 {
		window = float64(m.LastRecv-start.UnixMicro()) / 1e6
	}
	r.WindowSec = round(window, 3)
	if window > 0 {
		r.DeliveredPerS = round(float64(m.Received)/window, 1)
	}
	r.fillLatency(m, cfg, m.Missing)
	r.PublishLagP99 = ms(pr.lag.snapshot().quantile(0.99))
	r.LiveAtEnd, r.Dropped, r.Closes = m.Live, m.Dropped, m.Closes
	r.LoadCPUPct = round(lpct, 1)
	if len(cfg.serverPids) > 0 && m.Received > 0 {
		r.ServerCPUSec = round(used, 3)
		r.ServerCPUPct = round(100*used/window, 1)
		r.CPUPerMsgUs = round(used*1e6/float64(m.Received), 3)
	}
	if r.Missing > 0 && r.ConnectFailed > 0 {
		r.Notes = append(r.Notes, "missing counts only clients that connected")
	}
	if m.Opaque > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("%d clients got encrypted frames they cannot decrypt (the server encrypted connected too): counted by arrival order, no duplicate detection", m.Opaque))
	}
	if lpct > 90 {
		r.Notes = append(r.Notes, "load processes near one full core: figures may be bounded by the load, not the server")
	}
	if r.PublishLagged > 0 {
		r.Notes = append(r.Notes, "the publisher fell behind its schedule")
	}
	if r.PublishLagP99 > 5 {
		r.Notes = append(r.Notes, fmt.Sprintf("publishes left up to %.1f ms late (p99) against their schedule: latency is timed from the send, so that delay is not in it", r.PublishLagP99))
	}
	if r.ServerCPUPct > 90 {
		r.Notes = append(r.Notes, fmt.Sprintf("server core saturated (%.0f %%): CPU per message is then one core over the throughput, not a cost to compare", r.ServerCPUPct))
	}
	return ctx.Err()
}

// membersOf is how many of n clients are in slot room of k (round-robin).
func membersOf(room, n, k int) int {
	if k <= 1 {
		return n
	}
	c := n / k
	if room < n%k {
		c++
	}
	return c
}

// fillLatency sets the percentiles. missing messages count as later than
// any that arrived, so that a server cannot improve its tail by losing its
// slowest messages; a percentile that falls among them is reported as -1
// (unbounded) with a note.
func (r *result) fillLatency(m measureReport, cfg config, missing int64) {
	var all histSnap
	for i, h := range m.Lat {
		all.merge(h)
		if len(cfg.urls) > 1 && i < len(cfg.urls) {
			r.PerInstance = append(r.PerInstance, instanceLat{
				URL: cfg.urls[i], Count: h.total(), LatP50: ms(h.quantile(0.5)), LatP99: ms(h.quantile(0.99)),
			})
		}
	}
	q := func(p float64) float64 {
		v, ok := all.quantileWithMissing(p, uint64(max(missing, 0)))
		if !ok {
			return -1
		}
		return ms(v)
	}
	r.LatP50, r.LatP90, r.LatP99 = q(0.5), q(0.9), q(0.99)
	r.LatMax = ms(all.Max)
	if r.LatP99 < 0 {
		r.Notes = append(r.Notes, "p99 falls among the missing messages: latency unbounded (reported as -1)")
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

var isTTY = func() bool {
	fi, err := os.Stderr.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}()

var lastProgress time.Time

// progressf shows one progress line: rewritten in place on a terminal, at
// most every 2 s otherwise.
func progressf(format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	if isTTY {
		fmt.Fprintf(os.Stderr, "\r\033[K%s", s)
		return
	}
	if time.Since(lastProgress) >= 2*time.Second {
		lastProgress = time.Now()
		fmt.Fprintln(os.Stderr, s)
	}
}

func progressDone() {
	if isTTY {
		fmt.Fprintln(os.Stderr)
	}
	lastProgress = time.Time{}
}

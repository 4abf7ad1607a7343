package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// epoch is the lab's clock origin: stamps are microseconds since it, small
// enough for any JSON number.
var epoch = time.Now()

func nowUS() int64 { return time.Since(epoch).Microseconds() }

// publisher posts numbered broadcasts to one instance's REST API.
type publisher struct {
	origin     string
	srv        *server
	http       *http.Client
	mu         sync.Mutex
	sentAt     []int64 // per seq, µs since epoch (when the POST started)
	maxREST    time.Duration
	restErrors int
}

func (p *publisher) run(ctx context.Context, every time.Duration, pad string) {
	t := time.NewTicker(every)
	defer t.Stop()
	for seq := 0; ; seq++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		start := time.Now()
		at := nowUS()
		p.mu.Lock()
		p.sentAt = append(p.sentAt, at)
		p.mu.Unlock()
		body := fmt.Sprintf(`{"event":"lab","data":{"t":%d,"s":%d,"o":"%s","p":"%s"}}`, at, seq, p.origin, pad)
		r, err := p.http.Post(p.srv.httpURL()+"/ws-api/broadcast", "application/json", bytes.NewBufferString(body))
		if err == nil {
			r.Body.Close()
		}
		d := time.Since(start)
		p.mu.Lock()
		if err != nil || r.StatusCode != 200 {
			p.restErrors++
		}
		p.maxREST = max(p.maxREST, d)
		p.mu.Unlock()
	}
}

// receiver is a client that records which seqs of which origin it got.
type receiver struct {
	c   *wsClient
	mu  sync.Mutex
	got map[string]map[int64]int64 // origin → seq → received at (µs)
}

func (r *receiver) read() {
	for {
		p, err := r.c.next()
		if err != nil {
			return
		}
		if !bytes.HasPrefix(p, []byte(`{"event":"lab"`)) {
			continue
		}
		seq, ok := intField(p, "s")
		if !ok {
			continue
		}
		o := "?"
		if i := bytes.Index(p, []byte(`"o":"`)); i >= 0 && i+6 < len(p) {
			o = string(p[i+5 : i+6])
		}
		at := nowUS()
		r.mu.Lock()
		if r.got[o] == nil {
			r.got[o] = map[int64]int64{}
		}
		r.got[o][seq] = at
		r.mu.Unlock()
	}
}

func runOutage(ctx context.Context, c config, bin string) (map[string]any, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	rs, err := startRedis(port)
	if err != nil {
		return nil, err
	}
	defer func() { rs.kill() }()
	url := fmt.Sprintf("REDIS_URL=redis://127.0.0.1:%d", port)
	a, b, stop, err := startDemoPair(ctx, bin, c.cpu, url)
	if err != nil {
		return nil, err
	}
	defer stop()

	perSide := c.n(20)
	recv, hangUp, err := connectReceivers(ctx, a, b, perSide)
	defer hangUp()
	if err != nil {
		return nil, err
	}
	recvA, recvB := recv["A"], recv["B"]
	pubs := map[string]*publisher{
		"A": {origin: "A", srv: a, http: &http.Client{Timeout: 10 * time.Second}},
		"B": {origin: "B", srv: b, http: &http.Client{Timeout: 10 * time.Second}},
	}
	pctx, pstop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, p := range pubs {
		wg.Add(1)
		go func() { defer wg.Done(); p.run(pctx, 20*time.Millisecond, "x") }()
	}
	before := c.dur(5 * time.Second)
	after := c.dur(10 * time.Second)
	time.Sleep(before)
	killAt := nowUS()
	rs.kill()
	time.Sleep(c.outage)
	rs, err = startRedis(port)
	if err != nil {
		pstop()
		return nil, fmt.Errorf("restart redis: %w", err)
	}
	backAt := nowUS()
	time.Sleep(after)
	pstop()
	wg.Wait()
	time.Sleep(2 * time.Second) // drain

	res := map[string]any{
		"instanceA_alive": a.alive(), "instanceB_alive": b.alive(),
		"outage_s": c.outage.Seconds(), "clients_per_instance": perSide,
		"publish_rate_per_instance": 50,
	}
	var published int64
	for _, o := range []string{"A", "B"} {
		p := pubs[o]
		local, remote := recvA, recvB
		if o == "B" {
			local, remote = recvB, recvA
		}
		var outLocalWant, outLocalGot int
		resume := int64(-1)
		var afterWant, afterGot int
		for seq, at := range p.sentAt {
			published++
			s := int64(seq)
			if at >= killAt && at < backAt {
				for _, r := range local {
					outLocalWant++
					r.mu.Lock()
					if _, ok := r.got[o][s]; ok {
						outLocalGot++
					}
					r.mu.Unlock()
				}
			}
		}
		// Cross-instance resumption: the first seq published after Redis
		// came back that every remote client received; its reception time.
		firstResumed := -1
		for seq, at := range p.sentAt {
			if at < backAt {
				continue
			}
			all := true
			var last int64
			for _, r := range remote {
				r.mu.Lock()
				t, ok := r.got[o][int64(seq)]
				r.mu.Unlock()
				if !ok {
					all = false
					break
				}
				last = max(last, t)
			}
			if all {
				firstResumed = seq
				resume = last - backAt
				break
			}
		}
		if firstResumed >= 0 {
			for seq := firstResumed; seq < len(p.sentAt); seq++ {
				for _, r := range remote {
					afterWant++
					r.mu.Lock()
					if _, ok := r.got[o][int64(seq)]; ok {
						afterGot++
					}
					r.mu.Unlock()
				}
			}
		}
		res[o+"_local_delivery_during_outage_pct"] = round2(pct(outLocalGot, outLocalWant))
		res[o+"_local_deliveries_during_outage"] = fmt.Sprintf("%d/%d", outLocalGot, outLocalWant)
		if resume >= 0 {
			res[o+"_to_other_resumed_after_ms"] = round2(float64(resume) / 1000)
		} else {
			res[o+"_to_other_resumed_after_ms"] = "never"
		}
		res[o+"_to_other_lost_after_resumption"] = afterWant - afterGot
		res[o+"_to_other_checked_after_resumption"] = afterWant
		res[o+"_max_REST_publish_ms"] = round2(float64(p.maxREST.Microseconds()) / 1000)
		res[o+"_REST_errors"] = p.restErrors
	}
	for name, s := range map[string]*server{"A": a, "B": b} {
		if v, err := s.vars(); err == nil {
			res[name+"_publish_errors"] = v.Stats["PublishErrors"]
		}
	}
	res["published"] = published
	return res, nil
}

// startDemoPair starts two demos with env; stop stops both.
func startDemoPair(ctx context.Context, bin, cpu string, env ...string) (a, b *server, stop func(), err error) {
	if a, err = startDemo(ctx, bin, cpu, env...); err != nil {
		return nil, nil, nil, err
	}
	if b, err = startDemo(ctx, bin, cpu, env...); err != nil {
		a.stop()
		return nil, nil, nil, err
	}
	return a, b, func() { b.stop(); a.stop() }, nil
}

// connectReceivers connects perSide authenticated receivers to each of
// a and b (users u0…), reading in the background; hangUp closes them all,
// also after an error.
func connectReceivers(ctx context.Context, a, b *server, perSide int) (recv map[string][]*receiver, hangUp func(), err error) {
	recv = map[string][]*receiver{}
	var conns []*wsClient
	hangUp = func() {
		for _, cl := range conns {
			cl.conn.Close()
		}
	}
	for i := 0; i < 2*perSide; i++ {
		side, srv := "A", a
		if i >= perSide {
			side, srv = "B", b
		}
		cl, err := dial(ctx, srv.wsURL())
		if err != nil {
			return nil, hangUp, err
		}
		conns = append(conns, cl)
		if err := cl.authenticate(fmt.Sprintf("u%d", i)); err != nil {
			return nil, hangUp, err
		}
		r := &receiver{c: cl, got: map[string]map[int64]int64{}}
		recv[side] = append(recv[side], r)
		go r.read()
	}
	return recv, hangUp, nil
}

func pct(a, b int) float64 {
	if b == 0 {
		return 100
	}
	return 100 * float64(a) / float64(b)
}

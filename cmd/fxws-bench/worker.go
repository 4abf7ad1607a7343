package main

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// workerSpec says which clients one worker (this process or a child load
// process) holds and how they behave. Client i of the whole run connects to
// URLs[i % len(URLs)] from Sources[i % len(Sources)] as user "b<i>" and, with
// Rooms > 0, is joined server-side to room i % Rooms.
type workerSpec struct {
	URLs            []string      `json:"urls"`
	APIs            []string      `json:"apis"`
	Sources         []string      `json:"sources,omitempty"`
	First           int           `json:"first"`
	Count           int           `json:"count"`
	Rooms           int           `json:"rooms,omitempty"`
	Encrypted       bool          `json:"encrypted,omitempty"`
	Echo            bool          `json:"echo,omitempty"`
	EchoInflight    int           `json:"echoInflight,omitempty"`
	Deflate         bool          `json:"deflate,omitempty"`
	Size            int           `json:"size"`
	Heartbeat       time.Duration `json:"heartbeat"`
	DialConcurrency int           `json:"dialConcurrency"`
	ConnectTimeout  time.Duration `json:"connectTimeout"`
}

// roomName is the name of bench room r.
func roomName(r int) string { return fmt.Sprintf("public-bench-%d", r) }

type connectReport struct {
	OK        int            `json:"ok"`
	Failed    int            `json:"failed"`
	Errors    map[string]int `json:"errors,omitempty"`
	ElapsedMs float64        `json:"elapsedMs"`
}

type progressReport struct {
	Connected int64 `json:"connected"`
	Failed    int64 `json:"failed"`
	Live      int64 `json:"live"`
	Received  int64 `json:"received"`
	Dups      int64 `json:"dups"`
	Echoes    int64 `json:"echoes"`
	LastRecv  int64 `json:"lastRecv"`
}

type measureReport struct {
	Received      int64          `json:"received"`
	Dups          int64          `json:"dups"`
	Missing       int64          `json:"missing"`
	DecryptErrors int64          `json:"decryptErrors,omitempty"`
	Echoes        int64          `json:"echoes,omitempty"`
	Lat           []histSnap     `json:"lat"`
	Live          int64          `json:"live"`
	Dropped       int64          `json:"dropped"`
	Closes        map[string]int `json:"closes,omitempty"`
	LastRecv      int64          `json:"lastRecv"`
	Opaque        int            `json:"opaque,omitempty"`
}

// worker holds a slice of the run's clients in this process.
type worker struct {
	spec    workerSpec
	clients []*benchClient
	http    *http.Client

	connected, failed atomic.Int64
	live, dropped     atomic.Int64
	closing           atomic.Bool

	measuring     atomic.Bool
	echo          bool
	received      atomic.Int64
	dups          atomic.Int64
	echoes        atomic.Int64
	decryptErrors atomic.Int64
	lastRecv      atomic.Int64
	lat           []hist
	echoMsg       func(ts int64) []byte

	mu     sync.Mutex
	closes map[string]int

	// sendTimes, when set, gives the publish time of (room, seq) so that
	// clients that cannot decrypt (the original encrypts even connected)
	// still get a latency by arrival order. Only in-process.
	sendTimes func(room, seq int) int64

	stopHB context.CancelFunc
}

func newWorker(spec workerSpec) *worker {
	w := &worker{
		spec:   spec,
		echo:   spec.Echo,
		lat:    make([]hist, len(spec.URLs)),
		closes: map[string]int{},
		http: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			MaxIdleConnsPerHost: 16,
		}},
	}
	pad := strings.Repeat("x", max(0, spec.Size-40))
	w.echoMsg = func(ts int64) []byte {
		return fmt.Appendf(nil, `{"event":"echo","data":{"bseq":0,"bts":%d,"p":"%s"}}`, ts, pad)
	}
	return w
}

func (w *worker) noteClose(code int, reason string) {
	w.mu.Lock()
	w.closes[fmt.Sprintf("%d %s", code, reason)]++
	w.mu.Unlock()
}

func (w *worker) opaqueSendTime(room, seq int) int64 {
	if w.sendTimes == nil {
		return 0
	}
	return w.sendTimes(max(room, 0), seq)
}

// errClass shortens an error to a stable key (no ports or addresses).
func errClass(err error) string {
	s := err.Error()
	first, _, _ := strings.Cut(s, ":")
	if i := strings.LastIndex(s, ": "); i >= 0 {
		return first + ": " + s[i+2:]
	}
	return s
}

// connect dials, authenticates (and joins rooms for) every client of the
// worker with bounded concurrency, then starts the heartbeat loop.
func (w *worker) connect(ctx context.Context) connectReport {
	start := time.Now()
	spec := w.spec
	w.clients = make([]*benchClient, spec.Count)
	var sources []net.IP
	for _, s := range spec.Sources {
		sources = append(sources, net.ParseIP(s))
	}
	// A server that fails every client would otherwise cost
	// Count × ConnectTimeout / DialConcurrency: give up after 100 failures
	// without a single success.
	ctx, giveUp := context.WithCancel(ctx)
	defer giveUp()
	var emu sync.Mutex
	errs := map[string]int{}
	next := atomic.Int64{}
	var wg sync.WaitGroup
	for g := 0; g < max(1, spec.DialConcurrency); g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				k := int(next.Add(1) - 1)
				if k >= spec.Count || ctx.Err() != nil {
					return
				}
				i := spec.First + k
				c := &benchClient{w: w, index: i, urlIx: i % len(spec.URLs), room: -1}
				if spec.Rooms > 0 {
					c.room = i % spec.Rooms
				}
				var src net.IP
				if len(sources) > 0 {
					src = sources[i%len(sources)]
				}
				err := c.dial(ctx, spec.URLs[c.urlIx], src, fmt.Sprintf("valid-b%d", i), spec.Encrypted, spec.Deflate, spec.ConnectTimeout)
				if err == nil && c.room >= 0 {
					err = w.join(ctx, c)
				}
				if err != nil {
					if c.conn != nil {
						_ = c.conn.Close()
					}
					if w.failed.Add(1) >= 100 && w.connected.Load() == 0 {
						giveUp()
					}
					emu.Lock()
					errs[errClass(err)]++
					emu.Unlock()
					continue
				}
				w.clients[k] = c
				w.live.Add(1)
				w.connected.Add(1)
				go c.readLoop()
			}
		}()
	}
	wg.Wait()
	if n := int64(spec.Count) - w.connected.Load() - w.failed.Load(); n > 0 {
		w.failed.Add(n)
		errs["not attempted: every attempt so far failed"] += int(n)
	}
	// Keep only the connected ones.
	kept := w.clients[:0]
	for _, c := range w.clients {
		if c != nil {
			kept = append(kept, c)
		}
	}
	w.clients = kept
	hctx, cancel := context.WithCancel(context.Background())
	w.stopHB = cancel
	go w.heartbeats(hctx)
	return connectReport{
		OK: int(w.connected.Load()), Failed: int(w.failed.Load()), Errors: errs,
		ElapsedMs: float64(time.Since(start).Microseconds()) / 1000,
	}
}

// join puts the client in its room through the REST control API of the
// instance it is connected to (server-side join: confirmed, no validation).
func (w *worker) join(ctx context.Context, c *benchClient) error {
	if c.id == "" {
		return fmt.Errorf("join: server did not say the client id")
	}
	u := fmt.Sprintf("%s/ws-api/clients/%s/rooms/%s", w.spec.APIs[c.urlIx], url.PathEscape(c.id), url.PathEscape(roomName(c.room)))
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, nil)
	if err != nil {
		return fmt.Errorf("join: %w", err)
	}
	resp, err := w.http.Do(req)
	if err != nil {
		return fmt.Errorf("join: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("join: status %d", resp.StatusCode)
	}
	return nil
}

// heartbeats sends every client an application heartbeat once per interval,
// spread evenly, so the server's idle sweep never closes a held connection.
func (w *worker) heartbeats(ctx context.Context) {
	if w.spec.Heartbeat <= 0 || len(w.clients) == 0 {
		return
	}
	const tick = 100 * time.Millisecond
	t := time.NewTicker(tick)
	defer t.Stop()
	per := max(1, int(int64(len(w.clients))*int64(tick)/int64(w.spec.Heartbeat)))
	hb := []byte(`{"event":"heartbeat"}`)
	pos := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for k := 0; k < per; k++ {
			c := w.clients[pos%len(w.clients)]
			pos++
			if !c.closed.Load() {
				_ = c.write(hb)
			}
		}
	}
}

func (w *worker) progress() progressReport {
	return progressReport{
		Connected: w.connected.Load(), Failed: w.failed.Load(), Live: w.live.Load(),
		Received: w.received.Load(), Dups: w.dups.Load(), Echoes: w.echoes.Load(),
		LastRecv: w.lastRecv.Load(),
	}
}

// start resets the counters and begins measuring; in echo mode every client
// puts its first round trips in flight.
func (w *worker) start() {
	w.received.Store(0)
	w.dups.Store(0)
	w.echoes.Store(0)
	w.decryptErrors.Store(0)
	w.lastRecv.Store(0)
	for i := range w.lat {
		w.lat[i].reset()
	}
	for _, c := range w.clients {
		// Safe: nothing is published while the worker is not measuring,
		// so readers do not touch this state now.
		clear(c.seen)
		c.distinct.Store(0)
		c.dups.Store(0)
		c.opaqueN = 0
	}
	w.measuring.Store(true)
	if w.echo {
		for _, c := range w.clients {
			for k := 0; k < max(1, w.spec.EchoInflight); k++ {
				_ = c.write(w.echoMsg(time.Now().UnixMicro()))
			}
		}
	}
}

func (w *worker) onEcho(c *benchClient, us int64) {
	if !w.measuring.Load() {
		return
	}
	w.lat[c.urlIx].record(us)
	w.echoes.Add(1)
	_ = c.write(w.echoMsg(time.Now().UnixMicro()))
}

// stop ends the measurement. expected[r] is how many messages room r got
// published (expected[0] for broadcast); missing counts what each client
// did not receive of that, dropped clients included.
func (w *worker) stop(expected []int64) measureReport {
	w.measuring.Store(false)
	r := measureReport{
		Received: w.received.Load(), Dups: w.dups.Load(), Echoes: w.echoes.Load(),
		DecryptErrors: w.decryptErrors.Load(), Live: w.live.Load(), Dropped: w.dropped.Load(),
		LastRecv: w.lastRecv.Load(),
	}
	for i := range w.lat {
		r.Lat = append(r.Lat, w.lat[i].snapshot())
	}
	if len(expected) > 0 {
		for _, c := range w.clients {
			e := expected[0]
			if c.room >= 0 && c.room < len(expected) {
				e = expected[c.room]
			}
			r.Missing += max(0, e-c.distinct.Load())
			if c.opaque {
				r.Opaque++
			}
		}
	}
	w.mu.Lock()
	r.Closes = maps.Clone(w.closes)
	w.mu.Unlock()
	return r
}

// close ends every connection with a normal close frame.
func (w *worker) close() {
	w.closing.Store(true)
	if w.stopHB != nil {
		w.stopHB()
	}
	for _, c := range w.clients {
		if !c.closed.Load() {
			_ = c.writeOp(0x8, []byte{0x03, 0xe8})
			_ = c.conn.Close()
		}
	}
	w.http.CloseIdleConnections()
}

// jsonLine encodes v as one line.
func jsonLine(v any) []byte {
	b, _ := json.Marshal(v)
	return append(b, '\n')
}

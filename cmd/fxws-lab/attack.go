package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fxws/websocket/internal/wsdeflate"
	"github.com/gobwas/ws"
)

// echoer is a healthy client measuring echo round trips.
type echoer struct {
	c   *wsClient
	mu  sync.Mutex
	lat latencies
	on  bool
	err atomic.Int64
}

func (e *echoer) run(ctx context.Context, every time.Duration) {
	go func() {
		for {
			p, err := e.c.next()
			if err != nil {
				return
			}
			if !bytes.HasPrefix(p, []byte(`{"event":"echo"`)) {
				continue
			}
			t, ok := intField(p, "t")
			if !ok {
				continue
			}
			d := nowUS() - t
			e.mu.Lock()
			if e.on {
				e.lat = append(e.lat, d)
			}
			e.mu.Unlock()
		}
	}()
	tk := time.NewTicker(every)
	defer tk.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tk.C:
		}
		if e.c.send([]byte(fmt.Sprintf(`{"event":"echo","data":{"t":%d}}`, nowUS()))) != nil {
			e.err.Add(1)
			return
		}
	}
}

func (e *echoer) measure(on bool) latencies {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.on = on
	l := e.lat
	e.lat = nil
	return l
}

// defaultKinds are the attackers' behaviours of the mixed attack;
// attacker i repeats kind i%7.
var defaultKinds = []string{"violations", "deep-json", "huge-join", "flood", "pre-101", "wrong-types", "slowloris"}

// attackKinds are all the behaviours -kinds may name. "deflate" is not in
// the default mix (the default server does not negotiate compression): it
// starts the demo with PER_MESSAGE_DEFLATE=1 and sends compressed messages
// that inflate to nearly MaxPayloadLength, compression bombs and data that
// is not deflate. "deflate-anon" does the first of those without
// authenticating. "deflate-stream" authenticates and then sends compressed
// messages that inflate to 120 KB and ask for no answer, for as long as
// the server keeps it (what Limits.InflatedBytesPerSecond budgets).
var attackKinds = append(slices.Clone(defaultKinds), "deflate", "deflate-anon", "deflate-stream")

type attackStats struct {
	mu     sync.Mutex
	Rounds map[string]int            `json:"rounds"`
	Closes map[string]map[string]int `json:"closes"` // kind → "code reason" → n
	// Errors holds the first error text seen for each kind and outcome,
	// to tell what a bare "timeout" or "eof/reset" was.
	Errors map[string]string `json:"errors"`
}

func (a *attackStats) note(kind, what string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.Closes[kind] == nil {
		a.Closes[kind] = map[string]int{}
	}
	a.Closes[kind][what]++
}

func (a *attackStats) sample(key string, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.Errors[key]; !ok {
		a.Errors[key] = err.Error()
	}
}

func outcome(err error) string {
	var ce *closeErr
	if errors.As(err, &ce) {
		return fmt.Sprintf("%d %s", ce.code, ce.reason)
	}
	if err == nil {
		return "open"
	}
	var se ws.StatusError
	if errors.As(err, &se) {
		return fmt.Sprintf("HTTP %d", int(se))
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timeout"
	}
	return "eof/reset"
}

// drainUntilClose reads until the server closes (or d passes).
func drainUntilClose(c *wsClient, d time.Duration) error {
	_ = c.conn.SetReadDeadline(time.Now().Add(d))
	for {
		if _, err := c.next(); err != nil {
			return err
		}
	}
}

func attacker(ctx context.Context, s *server, kind string, id int, st *attackStats) {
	for round := 0; ctx.Err() == nil; round++ {
		st.mu.Lock()
		st.Rounds[kind]++
		st.mu.Unlock()
		var err error
		switch kind {
		case "violations":
			err = violations(ctx, s, id)
		case "deep-json":
			err = withClient(ctx, s, id, func(c *wsClient) error {
				deep := strings.Repeat("[", 60000) + strings.Repeat("]", 60000)
				for i := 0; i < 50 && ctx.Err() == nil; i++ {
					if err := c.send([]byte(`{"event":"echo","data":` + deep + `}`)); err != nil {
						return err
					}
				}
				_, err := c.expect("error", 10*time.Second)
				return err
			})
		case "huge-join":
			err = withClient(ctx, s, id, func(c *wsClient) error {
				names := make([]string, 7342)
				for i := range names {
					names[i] = fmt.Sprintf("public-%d-%d", id, i)
				}
				b, _ := json.Marshal(map[string]any{"event": "join", "data": map[string]any{"rooms": names}})
				if err := c.send(b); err != nil {
					return err
				}
				for i := 0; i < 3000; i++ {
					if err := c.send([]byte(fmt.Sprintf(`{"event":"join","data":{"rooms":["public-burst-%d-%d"]}}`, id, i))); err != nil {
						return err
					}
				}
				return drainUntilClose(c, 10*time.Second)
			})
		case "flood":
			err = withClient(ctx, s, id, func(c *wsClient) error {
				msg := []byte(`{"event":"echo","data":"` + strings.Repeat("f", 1000) + `"}`)
				go func() { _ = drainUntilClose(c, 30*time.Second) }()
				for ctx.Err() == nil {
					if err := c.send(msg); err != nil {
						return err
					}
				}
				return nil
			})
		case "pre-101":
			err = pre101(ctx, s)
		case "wrong-types":
			err = withClient(ctx, s, id, func(c *wsClient) error {
				for _, m := range []string{`null`, `{"event":"join","data":{"rooms":"public-a"}}`,
					`{"event":"join","data":{"rooms":{"a":1}}}`, `{"event":"leave","data":null}`,
					`{"event":7}`, `{"event":"authenticate","data":[]}`, `[]`, `{"event":"echo","data":` + strings.Repeat(`{"a":`, 100) + `1` + strings.Repeat(`}`, 100) + `}`} {
					if err := c.send([]byte(m)); err != nil {
						return err
					}
				}
				_, err := c.expect("error", 10*time.Second)
				if err == nil {
					_ = c.closeNormally()
				}
				return err
			})
		case "slowloris":
			err = slowloris(ctx, s)
		case "deflate":
			err = deflateAttack(ctx, s, id, round)
		case "deflate-anon":
			err = anonDeflateAttack(ctx, s)
		case "deflate-stream":
			err = streamDeflateAttack(ctx, s, id)
		}
		if ctx.Err() != nil {
			break // the round was cut by the attack's end, not by the server
		}
		st.note(kind, outcome(err))
		if err != nil {
			st.sample(kind+" "+outcome(err), err)
		}
	}
}

// Compressed payloads of the deflate attack, made once: an echo of 120 KB
// of text that compresses to a few hundred bytes, and 100 MB of zeros.
var (
	amplified = sync.OnceValue(func() []byte {
		return wsdeflate.Compress([]byte(`{"event":"echo","data":"` + strings.Repeat("amplify ", 15000) + `"}`))
	})
	deflateBomb = sync.OnceValue(func() []byte { return wsdeflate.Bomb(100 << 20) })
	// a chat message the demo records (its event, not its data) and does
	// not answer
	amplifiedQuiet = sync.OnceValue(func() []byte {
		return wsdeflate.Compress([]byte(`{"event":"chat","data":"` + strings.Repeat("amplify ", 15000) + `"}`))
	})
)

// deflateAttack is one connection of the deflate attacker, by round: 200
// compressed echoes that inflate to 120 KB each, sent as fast as the
// socket takes them; a compression bomb; or junk marked compressed.
func deflateAttack(ctx context.Context, s *server, id, round int) error {
	c, closeNow, err := compressedAttacker(ctx, s, id)
	if err != nil {
		return err
	}
	defer closeNow()
	switch round % 3 {
	case 0:
		// 200 of them (24 MB once inflated), reading the echoes, then
		// away: the next rounds are a bomb and junk.
		go func() { _ = drainUntilClose(c, 30*time.Second) }()
		for i := 0; i < 200 && ctx.Err() == nil; i++ {
			if err := c.sendCompressed(amplified()); err != nil {
				return err
			}
		}
		return nil
	case 1:
		if err := c.sendCompressed(deflateBomb()); err != nil {
			return err
		}
	default:
		if err := c.sendCompressed([]byte{0xff, 0xfe, 0x01, 0x02, 0x03}); err != nil {
			return err
		}
	}
	return drainUntilClose(c, 10*time.Second)
}

// streamDeflateAttack is one connection of the deflate-stream attacker:
// authenticated, it sends compressed chat messages that inflate to 120 KB
// each, as fast as the socket takes them, until the server closes it or the
// attack ends.
func streamDeflateAttack(ctx context.Context, s *server, id int) error {
	c, closeNow, err := compressedAttacker(ctx, s, id)
	if err != nil {
		return err
	}
	defer closeNow()
	done := make(chan error, 1)
	go func() {
		err := drainUntilClose(c, time.Hour)
		_ = c.conn.Close() // on to the next connection at once
		done <- err
	}()
	for ctx.Err() == nil {
		if err := c.sendCompressed(amplifiedQuiet()); err != nil {
			break
		}
	}
	return <-done
}

// compressedAttacker dials with permessage-deflate and authenticates as
// attacker id; closeNow ends the connection, and the attack's end does too
// (see closeAtEnd).
func compressedAttacker(ctx context.Context, s *server, id int) (c *wsClient, closeNow func(), err error) {
	c, err = dialCompressed(ctx, s.wsURL())
	if err != nil {
		return nil, nil, err
	}
	closeNow = closeAtEnd(ctx, c.conn)
	if err := c.authenticate(fmt.Sprintf("attacker%d", id)); err != nil {
		closeNow()
		return nil, nil, err
	}
	return c, closeNow, nil
}

// closeAtEnd closes an attacker's connection when the attack ends, so that
// no write or read still waiting on the server (each has a deadline of 10 s,
// and a round may hold thousands of them) keeps the process past its
// duration. Its result closes the connection at once.
func closeAtEnd(ctx context.Context, conn net.Conn) (closeNow func()) {
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	return func() {
		stop()
		_ = conn.Close()
	}
}

// anonDeflateAttack is one connection of the deflate-anon attacker: 200
// compressed echoes of 120 KB each without authenticating, which a server
// inflates before it can say "Not authenticated", as fast as the socket
// takes them, reading the answers.
func anonDeflateAttack(ctx context.Context, s *server) error {
	c, err := dialCompressed(ctx, s.wsURL())
	if err != nil {
		return err
	}
	defer closeAtEnd(ctx, c.conn)()
	done := make(chan error, 1)
	go func() { done <- drainUntilClose(c, 10*time.Second) }()
	for i := 0; i < 200 && ctx.Err() == nil; i++ {
		if err := c.sendCompressed(amplified()); err != nil {
			break
		}
	}
	return <-done
}

func withClient(ctx context.Context, s *server, id int, f func(*wsClient) error) error {
	c, err := dial(ctx, s.wsURL())
	if err != nil {
		return err
	}
	defer closeAtEnd(ctx, c.conn)()
	if err := c.authenticate(fmt.Sprintf("attacker%d", id)); err != nil {
		return err
	}
	return f(c)
}

// violations sends one protocol violation per connection, in turn.
func violations(ctx context.Context, s *server, id int) error {
	c, err := dial(ctx, s.wsURL())
	if err != nil {
		return err
	}
	defer closeAtEnd(ctx, c.conn)()
	var frame []byte
	switch id % 4 {
	case 0: // unmasked
		frame = []byte{0x81, 0x02, '{', '}'}
	case 1: // invalid UTF-8 text
		var buf bytes.Buffer
		_ = ws.WriteFrame(&buf, ws.MaskFrame(ws.NewTextFrame([]byte{0xff, 0xfe})))
		frame = buf.Bytes()
	case 2: // reserved bits
		frame = []byte{0xf1, 0x80, 1, 2, 3, 4}
	case 3: // too big (announced 1 MiB)
		frame = []byte{0x81, 0xff, 0, 0, 0, 0, 0, 0x10, 0, 0, 1, 2, 3, 4}
	}
	if _, err := c.conn.Write(frame); err != nil {
		return err
	}
	return drainUntilClose(c, 10*time.Second)
}

// pre101 writes the upgrade request and frames in one packet, without
// waiting for the 101.
func pre101(ctx context.Context, s *server) error {
	conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", s.port), 5*time.Second)
	if err != nil {
		return err
	}
	defer closeAtEnd(ctx, conn)()
	key := make([]byte, 16)
	_, _ = rand.Read(key)
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n",
		base64.StdEncoding.EncodeToString(key))
	for i := 0; i < 50; i++ {
		_ = ws.WriteFrame(&buf, ws.MaskFrame(ws.NewTextFrame([]byte(`{"event":"echo","data":"before 101"}`))))
	}
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write(buf.Bytes()); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.Contains(line, "101") {
		return fmt.Errorf("status %q", strings.TrimSpace(line))
	}
	return nil
}

// slowloris sends an upgrade request one header byte per 500 ms.
func slowloris(ctx context.Context, s *server) error {
	conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", s.port), 5*time.Second)
	if err != nil {
		return err
	}
	defer closeAtEnd(ctx, conn)()
	req := "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nX-Slow: " + strings.Repeat("a", 1000)
	start := time.Now()
	for i := 0; i < len(req) && ctx.Err() == nil; i++ {
		if _, err := conn.Write([]byte{req[i]}); err != nil {
			return fmt.Errorf("cut after %v: %w", time.Since(start).Round(time.Second), err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	return nil
}

func runAttack(ctx context.Context, c config, bin string) (map[string]any, error) {
	var env []string
	if slices.ContainsFunc(strings.Split(c.kinds, ","), func(k string) bool { return strings.HasPrefix(k, "deflate") }) {
		env = append(env, "PER_MESSAGE_DEFLATE=1")
	}
	s, err := startDemo(ctx, bin, c.cpu, env...)
	if err != nil {
		return nil, err
	}
	defer s.stop()
	hctx, hstop := context.WithCancel(ctx)
	defer hstop()
	var healthy []*echoer
	healthyPorts := map[uint16]bool{}
	for i := 0; i < c.n(c.healthy); i++ {
		cl, err := dial(ctx, s.wsURL())
		if err != nil {
			return nil, err
		}
		defer cl.conn.Close()
		if err := cl.authenticate(fmt.Sprintf("h%d", i)); err != nil {
			return nil, err
		}
		if a, ok := cl.conn.LocalAddr().(*net.TCPAddr); ok {
			healthyPorts[uint16(a.Port)] = true
		}
		e := &echoer{c: cl}
		healthy = append(healthy, e)
		go e.run(hctx, 100*time.Millisecond)
	}
	d := c.dur(20 * time.Second)
	collect := func() latencies {
		var all latencies
		for _, e := range healthy {
			all = append(all, e.measure(false)...)
		}
		return all
	}
	time.Sleep(time.Second)
	for _, e := range healthy {
		e.measure(true)
	}
	rss0 := rssBytes(s.pid())
	smp := sample(s.pid())
	// Tracing slows the server a little, so a phase traced for -stretches
	// carries that in its latencies: compare p99s between runs without it.
	probes := func() (trace, wire func() (map[string]any, error)) {
		trace = midway(ctx, c.stretches, d, probeSpan, func() (map[string]any, error) {
			return traceStretches(ctx, s, probeSpan, filepath.Dir(bin))
		})
		wire = midway(ctx, c.wire, d, probeSpan, func() (map[string]any, error) {
			return captureWire(ctx, s.port, probeSpan, filepath.Dir(bin), healthyPorts)
		})
		return trace, wire
	}
	cleanTrace, cleanWire := probes()
	time.Sleep(d)
	_, cleanCPU := smp.stop()
	clean := collect()

	for _, e := range healthy {
		e.measure(true)
	}
	rssBefore := rssBytes(s.pid())
	varsBefore, _ := s.vars()
	smp = sample(s.pid())
	// The attackers run in their own process: in the lab's process their
	// goroutines would share one Go scheduler with the healthy clients and
	// delay the very round trips being measured, which an attack from other
	// machines cannot do.
	wait, err := spawnAttackers(ctx, c, s.port, d)
	if err != nil {
		return nil, err
	}
	attackTrace, attackWire := probes()
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(d):
	}
	attacked := collect()
	peak, cpu := smp.stop()
	rssEnd := rssBytes(s.pid())
	varsAfter, _ := s.vars()
	st, err := wait()
	if err != nil {
		return nil, err
	}
	var healthyErrors int64
	for _, e := range healthy {
		healthyErrors += e.err.Load()
	}
	res := map[string]any{
		"healthy": c.n(c.healthy), "attackers": c.n(c.attack), "duration_s": d.Seconds(),
		"server_alive":        s.alive(),
		"clean_p50_ms":        round2(clean.quantile(0.5)),
		"clean_p99_ms":        round2(clean.quantile(0.99)),
		"attack_p50_ms":       round2(attacked.quantile(0.5)),
		"attack_p99_ms":       round2(attacked.quantile(0.99)),
		"p99_ratio_vs_clean":  round2(attacked.quantile(0.99) / max(clean.quantile(0.99), 0.001)),
		"healthy_round_trips": len(attacked),
		"healthy_send_errors": healthyErrors,
		"rss_clean_MiB":       round2(mib(rss0)),
		"rss_peak_growth_MiB": round2(mib(peak - rssBefore)),
		"rss_end_growth_MiB":  round2(mib(rssEnd - rssBefore)),
		"server_cpu_clean":    round2(cleanCPU),
		"server_cpu_attack":   round2(cpu),
		"attack_kinds":        c.kinds,
		"attack_rounds":       st.Rounds,
		"attack_outcomes":     st.Closes,
		"attack_errors":       st.Errors,
		// what the server's Stats counted during the attack (e.g.
		// InflatedMessages, RateLimited, ConnectionsTotal)
		"server_stats_delta": statsDelta(varsBefore.Stats, varsAfter.Stats),
	}
	if c.wire {
		cw, err := cleanWire()
		if err != nil {
			return nil, err
		}
		aw, err := attackWire()
		if err != nil {
			return nil, err
		}
		res["wire_clean"], res["wire_attack"] = cw, aw
		res["wire_p99_ratio_vs_clean"] = round2(aw["p99_ms"].(float64) / max(cw["p99_ms"].(float64), 0.001))
	}
	if c.stretches {
		if res["stretches_clean"], err = cleanTrace(); err != nil {
			return nil, err
		}
		if res["stretches_attack"], err = attackTrace(); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// midway, when on, runs f from the middle of a phase of length d, f taking
// span; the returned function waits for f's result (nil when off). The
// lab's probes (-stretches, -wire) look at the middle of each phase, away
// from its ramp-up and end.
func midway(ctx context.Context, on bool, d, span time.Duration, f func() (map[string]any, error)) func() (map[string]any, error) {
	if !on {
		return func() (map[string]any, error) { return nil, nil }
	}
	done := make(chan struct{})
	var res map[string]any
	var err error
	go func() {
		defer close(done)
		select {
		case <-ctx.Done():
			err = ctx.Err()
			return
		case <-time.After(max(d/2-span/2, 0)):
		}
		res, err = f()
	}()
	return func() (map[string]any, error) { <-done; return res, err }
}

// probeSpan is how long each probe of a phase lasts.
const probeSpan = 3 * time.Second

// attackersGrace is how long past the attack the attackers process may
// take to report.
const attackersGrace = 30 * time.Second

// spawnAttackers starts this binary again with -role attackers on the
// cores the server does not use, for d; wait returns what the attackers saw.
func spawnAttackers(ctx context.Context, c config, port int, d time.Duration) (wait func() (*attackStats, error), err error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("lab: find own binary: %w", err)
	}
	args := []string{self, "-role", "attackers", "-port", strconv.Itoa(port),
		"-attackers", strconv.Itoa(c.n(c.attack)), "-duration", d.String(), "-kinds", c.kinds}
	if cpus := otherCPUs(c.cpu); cpus != "" {
		if tp, err := exec.LookPath("taskset"); err == nil {
			args = append([]string{"nice", "-n", "19", tp, "-c", cpus}, args...)
		}
	}
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Stderr = os.Stderr
	var out bytes.Buffer
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("lab: start attackers process: %w", err)
	}
	// The process ends its attackers' connections at the end of d. Should
	// it still run well past that, it is asked for its goroutines' stacks
	// (SIGQUIT, on the lab's stderr) and killed, rather than hang the lab.
	overdue := time.AfterFunc(d+attackersGrace, func() {
		fmt.Fprintf(os.Stderr, "lab: the attackers process is still running %v after the attack's end: its stacks follow, then it is killed\n", attackersGrace)
		_ = cmd.Process.Signal(syscall.SIGQUIT)
		time.AfterFunc(5*time.Second, func() { _ = cmd.Process.Kill() })
	})
	return func() (*attackStats, error) {
		err := cmd.Wait()
		overdue.Stop()
		if err != nil {
			return nil, fmt.Errorf("lab: attackers process: %w", err)
		}
		st := &attackStats{}
		if err := json.Unmarshal(out.Bytes(), st); err != nil {
			return nil, fmt.Errorf("lab: attackers' report %q: %w", out.Bytes(), err)
		}
		return st, nil
	}, nil
}

// runAttackers is the attackers' process: -attackers of them against the
// demo on -port for -duration, then one JSON report on stdout.
func runAttackers(c config) {
	s := &server{port: c.port}
	ctx, stop := context.WithTimeout(context.Background(), c.duration)
	defer stop()
	st := &attackStats{Rounds: map[string]int{}, Closes: map[string]map[string]int{}, Errors: map[string]string{}}
	kinds := strings.Split(c.kinds, ",")
	for _, k := range kinds {
		if !slices.Contains(attackKinds, k) {
			fail(fmt.Errorf("unknown attack kind %q (have %s)", k, strings.Join(attackKinds, ", ")))
		}
	}
	var wg sync.WaitGroup
	for i := 0; i < c.attack; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); attacker(ctx, s, kinds[i%len(kinds)], i, st) }()
	}
	wg.Wait()
	st.mu.Lock()
	defer st.mu.Unlock()
	b, err := json.Marshal(st)
	if err != nil {
		fail(err)
	}
	fmt.Println(string(b))
}

// statsDelta returns the numeric Stats fields that changed between two
// readings, as after minus before.
func statsDelta(before, after map[string]any) map[string]float64 {
	d := map[string]float64{}
	for k, v := range after {
		if m, ok := v.(map[string]any); ok {
			// Counts by close code: "ServerCloses.4008".
			was, _ := before[k].(map[string]any)
			for code, delta := range statsDelta(was, m) {
				d[k+"."+code] = delta
			}
			continue
		}
		a, ok := v.(float64)
		if !ok {
			continue
		}
		b, _ := before[k].(float64)
		if a != b {
			d[k] = a - b
		}
	}
	return d
}

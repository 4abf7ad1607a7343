package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// publisher sends one bench message to a room (or to everyone for room -1).
type publisher interface {
	publish(ctx context.Context, room int, data []byte) error
	close()
}

// restPublisher uses the demo contract's REST control API of one instance.
type restPublisher struct {
	api string
	c   *http.Client
}

func newRESTPublisher(api string) *restPublisher {
	return &restPublisher{api: api, c: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}}
}

func (p *restPublisher) publish(ctx context.Context, room int, data []byte) error {
	u := p.api + "/ws-api/broadcast"
	if room >= 0 {
		u = p.api + "/ws-api/rooms/" + url.PathEscape(roomName(room)) + "/send"
	}
	body := make([]byte, 0, len(data)+32)
	body = append(body, `{"event":"`+benchEvent+`","data":`...)
	body = append(body, data...)
	body = append(body, '}')
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := p.c.Do(req)
	if err != nil {
		return fmt.Errorf("rest publish: %w", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("rest publish: status %d", resp.StatusCode)
	}
	return nil
}

func (p *restPublisher) close() { p.c.CloseIdleConnections() }

// redisPublisher publishes emitter envelopes, exactly as a standalone
// emitter (serverId "emitter") does; every instance on that Redis delivers.
type redisPublisher struct{ c *redis.Client }

func newRedisPublisher(ctx context.Context, rawURL string) (*redisPublisher, error) {
	opt, err := redis.ParseURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("fxws-bench: redis url: %w", err)
	}
	opt.PoolSize = 16
	c := redis.NewClient(opt)
	if err := c.Ping(ctx).Err(); err != nil {
		c.Close()
		return nil, fmt.Errorf("fxws-bench: redis ping: %w", err)
	}
	return &redisPublisher{c: c}, nil
}

func (p *redisPublisher) publish(ctx context.Context, room int, data []byte) error {
	env := map[string]any{"serverId": "emitter", "type": "broadcast", "event": benchEvent, "data": json.RawMessage(data)}
	ch := "ws:broadcast"
	if room >= 0 {
		env["type"] = "room"
		env["target"] = roomName(room)
		ch = "ws:room:" + roomName(room)
	}
	b, _ := json.Marshal(env)
	if err := p.c.Publish(ctx, ch, b).Err(); err != nil {
		return fmt.Errorf("redis publish: %w", err)
	}
	return nil
}

func (p *redisPublisher) close() { p.c.Close() }

// pubRun paces messages at a fixed total rate, round-robin over rooms, with
// a few concurrent senders so one slow request does not stall the schedule.
// Each message carries its room's sequence number and the send time.
type pubRun struct {
	pub      publisher
	rooms    int // 0: broadcast
	rate     float64
	duration time.Duration
	size     int
	textPad  bool // pad with text that compresses as prose does, not "xxx…"

	sent   []atomic.Int64 // per room, successful publishes
	errors atomic.Int64
	lagged atomic.Int64 // sends that left more than 100 ms after schedule
	// lag is how late each send left against its schedule. Latency is
	// timed from the send, so the publisher's own delays (its core busy
	// reading the previous fan-out) are not in it: this says how large
	// they were.
	lag hist

	mu    sync.Mutex
	times [][]int64 // per room: send time of each seq (µs), for opaque clients
}

func (p *pubRun) slots() int { return max(1, p.rooms) }

// sendTime implements worker.sendTimes.
func (p *pubRun) sendTime(room, seq int) int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	if room < len(p.times) && seq < len(p.times[room]) {
		return p.times[room][seq]
	}
	return 0
}

func (p *pubRun) expected() []int64 {
	out := make([]int64, p.slots())
	for i := range out {
		out[i] = p.sent[i].Load()
	}
	return out
}

func (p *pubRun) run(ctx context.Context) {
	n := p.slots()
	p.sent = make([]atomic.Int64, n)
	p.times = make([][]int64, n)
	total := int(p.rate * p.duration.Seconds())
	interval := time.Duration(float64(time.Second) / p.rate)
	pad := strings.Repeat("x", max(0, p.size-60))
	if p.textPad {
		pad = textPadding(max(0, p.size-60))
	}
	type job struct {
		room, seq int
		due       time.Time
	}
	jobs := make(chan job, 1024)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				now := time.Now()
				p.lag.record(now.Sub(j.due).Microseconds())
				ts := now.UnixMicro()
				p.mu.Lock()
				for len(p.times[j.room]) <= j.seq {
					p.times[j.room] = append(p.times[j.room], 0)
				}
				p.times[j.room][j.seq] = ts
				p.mu.Unlock()
				data := fmt.Appendf(nil, `{"bseq":%d,"bts":%d,"br":%d,"p":"%s"}`, j.seq, ts, j.room, pad)
				room := j.room
				if p.rooms == 0 {
					room = -1
				}
				if err := p.pub.publish(ctx, room, data); err != nil {
					p.errors.Add(1)
					continue
				}
				p.sent[j.room].Add(1)
			}
		}()
	}
	start := time.Now()
	seqs := make([]int, n)
	for i := 0; i < total && ctx.Err() == nil; i++ {
		due := start.Add(time.Duration(i) * interval)
		if d := time.Until(due); d > 0 {
			time.Sleep(d)
		} else if d < -100*time.Millisecond {
			p.lagged.Add(1)
		}
		r := i % n
		jobs <- job{room: r, seq: seqs[r], due: due}
		seqs[r]++
	}
	close(jobs)
	wg.Wait()
}

// padWords make textPadding: a dashboard's or a chat's vocabulary.
var padWords = strings.Fields(`sensor reading temperature humidity pressure status ok warning
	alert user message room online offline typing joined left updated value level battery signal
	north south east west gateway device firmware version latency queue worker job done failed
	retry price volume bid ask order filled cancelled account balance session token region zone`)

// textPadding is n bytes of words and numbers from a fixed seed: text that
// deflate shrinks about as much as real JSON payloads (2–4×), where "xxx…"
// would shrink a hundredfold and flatter compression.
func textPadding(n int) string {
	var b strings.Builder
	x := uint32(2463534242)
	next := func() uint32 { x ^= x << 13; x ^= x >> 17; x ^= x << 5; return x }
	for b.Len() < n {
		if r := next(); r%3 == 0 {
			b.WriteString(strconv.FormatFloat(float64(r%100000)/100, 'f', 2, 64))
		} else {
			b.WriteString(padWords[r%uint32(len(padWords))])
		}
		b.WriteByte(' ')
	}
	return b.String()[:n]
}

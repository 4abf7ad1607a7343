// Command fxws-lab runs fault and abuse scenarios against examples/demo
// (which it builds and starts itself) and prints figures: one JSON line per
// scenario on stdout, and a human summary on stderr. It asserts nothing:
// the figures go into docs/hardening.md, labelled with machine and command.
//
//	go run ./cmd/fxws-lab -scenario redis-outage
//	go run ./cmd/fxws-lab -scenario sentinel
//	go run ./cmd/fxws-lab -scenario slow -duration 30s
//	go run ./cmd/fxws-lab -scenario attack -duration 20s
//	go run ./cmd/fxws-lab -scenario churn -duration 30s
//	go run ./cmd/fxws-lab -scenario all -scale 0.2    # a quick pass
//
// Scenarios:
//
//   - redis-outage: two instances on one Redis (started on a random port);
//     each publishes a numbered broadcast stream; Redis is killed for
//     -outage mid-stream and restarted on the same port. Figures: both
//     processes alive, local delivery during the outage, time from Redis
//     back to the first cross-instance delivery, loss after that.
//   - sentinel: two instances on a master, its replica and a Sentinel
//     (REDIS_URL with master_name), each publishing a numbered broadcast
//     stream, through three failovers, each on a fresh set: the master
//     killed; a planned one (SENTINEL FAILOVER, the old master left up);
//     the planned one with only A publishing. Figures: when the Sentinel
//     switched, messages lost across instances from the fault on and the
//     last one lost, local deliveries, REST errors.
//   - slow: -clients clients, -slow of them stop reading (they keep sending
//     heartbeats), broadcasts of -size bytes at -rate per second; then the
//     same run without slow clients. Figures: server RSS growth against
//     BackpressureLimit × slow clients, healthy p99 against the clean run,
//     messages missing at healthy clients.
//   - attack: 100 healthy clients doing echo round trips, first alone, then
//     with 50 attackers (protocol violations, deep JSON, huge joins, floods,
//     frames before the 101, wrong types, slowloris). Figures: healthy p99
//     against the clean phase, RSS growth, CPU, process alive; with
//     -stretches, how many of the server's goroutine run stretches in a 3 s
//     trace from each phase were 0.25, 0.5, 1 and 2 ms or longer; with
//     -wire, the server's part of the healthy round trips, timed by the
//     kernel on lo (tcpdump), without the clients' own scheduling.
//     -kinds deflate (not in the default mix) starts the demo with
//     PER_MESSAGE_DEFLATE=1 and adds compressed echoes, compression bombs
//     and junk marked compressed; -kinds deflate-anon sends the echoes
//     without authenticating, -kinds deflate-stream streams compressed
//     messages from authenticated clients that reconnect when closed.
//   - churn: 2000 clients connect, authenticate, join 3 rooms, leave, close,
//     over and over; then 10 s idle. Figures: errors, clients left,
//     goroutines and RSS against the baseline.
//
// The demo is pinned to one core (-cpu, with taskset) like the original in
// the runs; the lab itself, and the attackers' process it starts,
// run on the other cores. Durations shrink with -scale for quick runs.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"sort"
	"strings"
	"time"
)

type config struct {
	scenario string
	scale    float64
	duration time.Duration
	cpu      string
	clients  int
	slow     int
	rate     int
	size     int
	outage   time.Duration
	healthy  int
	attack   int
	churners int
	idle     time.Duration
	bpLimit  int // the demo's BackpressureLimit (the helper's default)
	kinds    string
	role     string
	port     int
	heapOut  string // churn: where to save the server's heap profile at the end
	// attack: trace the demo mid-phase and count its long run stretches
	stretches bool
	// attack: capture healthy round trips on lo to time the server's part
	wire bool
}

func main() {
	var c config
	fs := flag.NewFlagSet("fxws-lab", flag.ExitOnError)
	fs.StringVar(&c.scenario, "scenario", "all", "redis-outage, sentinel, slow, attack, churn or all (all but sentinel)")
	fs.Float64Var(&c.scale, "scale", 1, "multiplies durations and client counts (0.1 for a quick pass)")
	fs.DurationVar(&c.duration, "duration", 0, "measured phase length (default per scenario: slow 30s, attack 20s, churn 30s, redis-outage 15s)")
	fs.StringVar(&c.cpu, "cpu", "0", "core(s) to pin the demo to with taskset (empty: no pinning)")
	fs.IntVar(&c.clients, "clients", 1000, "slow: clients in all")
	fs.IntVar(&c.slow, "slow", 10, "slow: clients that stop reading")
	fs.IntVar(&c.rate, "rate", 100, "slow: broadcasts per second")
	fs.IntVar(&c.size, "size", 4096, "slow: broadcast payload bytes")
	fs.DurationVar(&c.outage, "outage", 3*time.Second, "redis-outage: how long Redis is down")
	fs.IntVar(&c.healthy, "healthy", 100, "attack: healthy clients")
	fs.IntVar(&c.attack, "attackers", 50, "attack: attackers")
	fs.IntVar(&c.churners, "churners", 2000, "churn: concurrent churning clients")
	fs.DurationVar(&c.idle, "idle", 10*time.Second, "churn: idle time before the final reading")
	fs.IntVar(&c.bpLimit, "backpressure-limit", 1<<20, "slow: the server's BackpressureLimit, for the bound (the demo uses the default)")
	fs.StringVar(&c.kinds, "kinds", strings.Join(defaultKinds, ","), "attack: the attackers' behaviours, attacker i repeating kind i mod count (also: deflate, deflate-anon and deflate-stream, which turn on PER_MESSAGE_DEFLATE)")
	fs.StringVar(&c.heapOut, "heap-profile", "", "churn: save the server's heap profile (pprof, after a collection) at the end to this file")
	fs.BoolVar(&c.stretches, "stretches", false, "attack: take a 3 s execution trace mid-way through each phase and count the server's goroutine run stretches by length (see stretches.go)")
	fs.BoolVar(&c.wire, "wire", false, "attack: capture 3 s of the healthy clients' packets on lo (tcpdump) mid-way through each phase and report the server's part of their round trips (see wire.go)")
	fs.StringVar(&c.role, "role", "", "internal: \"attackers\" runs the attack scenario's attackers against -port (the lab starts it as its own process)")
	fs.IntVar(&c.port, "port", 0, "internal: the demo's port for -role attackers")
	_ = fs.Parse(os.Args[1:])

	if c.role == "attackers" {
		runAttackers(c)
		return
	}
	// The lab's clients stay off the server's cores: the instrument must
	// not compete with what it measures.
	if err := pinSelf(otherCPUs(c.cpu)); err != nil {
		fail(err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	dir, err := os.MkdirTemp("", "fxws-lab-")
	if err != nil {
		fail(err)
	}
	defer os.RemoveAll(dir)
	bin, err := buildDemo(ctx, dir)
	if err != nil {
		fail(err)
	}
	scenarios := map[string]func(context.Context, config, string) (map[string]any, error){
		"redis-outage": runOutage, "slow": runSlow, "attack": runAttack, "churn": runChurn, "sentinel": runSentinel,
	}
	names := []string{c.scenario}
	if c.scenario == "all" {
		names = []string{"redis-outage", "churn", "attack", "slow"}
	}
	for _, name := range names {
		run, ok := scenarios[name]
		if !ok {
			fail(fmt.Errorf("unknown scenario %q", name))
		}
		fmt.Fprintf(os.Stderr, "== %s\n", name)
		res, err := run(ctx, c, bin)
		if err != nil {
			fail(fmt.Errorf("%s: %w", name, err))
		}
		res["scenario"] = name
		res["machine"] = fmt.Sprintf("%s/%s, %d CPUs, %s", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version())
		res["command"] = strings.Join(os.Args, " ")
		b, _ := json.Marshal(res)
		fmt.Println(string(b))
		summary(res)
	}
}

func (c config) dur(def time.Duration) time.Duration {
	d := c.duration
	if d == 0 {
		d = def
	}
	return time.Duration(float64(d) * c.scale)
}

func (c config) n(v int) int { return max(1, int(float64(v)*c.scale)) }

func fail(err error) {
	fmt.Fprintln(os.Stderr, "fxws-lab:", err)
	os.Exit(1)
}

func summary(res map[string]any) {
	keys := make([]string, 0, len(res))
	for k := range res {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(os.Stderr, "  %-34s %v\n", k, res[k])
	}
}

// latencies collects round-trip or delivery times in microseconds.
type latencies []int64

func (l latencies) quantile(q float64) float64 {
	if len(l) == 0 {
		return 0
	}
	s := append(latencies(nil), l...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return float64(s[min(len(s)-1, int(q*float64(len(s))))]) / 1000 // ms
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

func round2(v float64) float64 { return float64(int64(v*100+0.5)) / 100 }

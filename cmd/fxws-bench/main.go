// Command fxws-bench is a load tool that speaks the Ignis WebSocket protocol
// to any server that follows the demo contract (ours or the original on Bun)
// and measures what users choose a real-time server by: connections held per
// GB, server CPU per delivered message, and delivery latency.
//
// Usage:
//
//	fxws-bench <scenario> [flags]
//
// Scenarios:
//
//	conns      hold -n authenticated, heartbeating connections: connect rate,
//	           failures, server CPU per connect+auth, server RSS per connection
//	broadcast  -n clients; publish -rate msgs/s to everyone (REST or an emitter
//	           envelope on Redis): delivered msgs/s, latency, missing,
//	           duplicates, server CPU per delivered message
//	rooms      like broadcast, clients joined server-side to -rooms rooms,
//	           messages round-robin over the rooms
//	echo       -n clients doing closed-loop echo round trips (-inflight each)
//	cross      broadcast with clients spread over several -url instances on
//	           one Redis, published through the first instance's REST API
//	encrypted  broadcast to clients that did the ECDH handshake (server run
//	           with REQUIRE_ENCRYPTION=1)
//
// -deflate makes every client offer permessage-deflate and send its messages
// compressed, as browsers do (server with PER_MESSAGE_DEFLATE=1, or the
// original with perMessageDeflate on).
//
// "fxws-bench report results.jsonl" turns result lines labelled with -label
// (ours, original) and -case into a Markdown table of medians and ratios.
//
// Human progress goes to stderr; each result is one JSON line on stdout.
// Server CPU and RSS come from /proc for the pids given with -server-pid.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"
)

// maxClientsPerProc keeps a load process under the machine's 20 000
// open-file limit with room for pipes, HTTP and Redis connections.
const maxClientsPerProc = 19_500

type config struct {
	scenario        string
	urls            []string
	apis            []string
	n               int
	rate            float64
	duration        time.Duration
	size            int
	rooms           int
	via             string
	redisURL        string
	serverPids      pidSet
	procs           int
	sources         int
	srcBase         string
	hold            time.Duration
	first           int // number of the first client (conns connects in two halves)
	heartbeat       time.Duration
	dialConcurrency int
	connectTimeout  time.Duration
	inflight        int
	deflate         bool
	textPad         bool
	settle          time.Duration
	drain           time.Duration
	label           string
	cpuProfile      string
	caseName        string
	drainMax        time.Duration
	rep             int
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "report" {
		if err := runReport(os.Args[2:], os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	if len(os.Args) > 1 && os.Args[1] == "worker" {
		if err := runWorkerProcess(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	cfg, err := parseConfig(os.Args[1:])
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	if cfg.cpuProfile != "" {
		f, err := os.Create(cfg.cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "fxws-bench: cpu profile:", err)
			os.Exit(2)
		}
		defer pprof.StopCPUProfile()
	}
	res, err := run(ctx, cfg)
	pprof.StopCPUProfile()
	if res != nil {
		os.Stdout.Write(jsonLine(res))
		res.summary(os.Stderr)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "fxws-bench:", err)
		os.Exit(1)
	}
}

var scenarioDefaults = map[string]struct {
	n     int
	rate  float64
	rooms int
}{
	"conns":     {n: 1000},
	"broadcast": {n: 1000, rate: 100},
	"rooms":     {n: 1000, rate: 1000, rooms: 100},
	"echo":      {n: 100},
	"cross":     {n: 1000, rate: 100},
	"encrypted": {n: 200, rate: 10},
}

func usage(fs *flag.FlagSet) func() {
	return func() {
		fmt.Fprintf(os.Stderr, "usage: fxws-bench <conns|broadcast|rooms|echo|cross|encrypted> [flags]\n       fxws-bench report [-a original -b ours] results.jsonl\n\n")
		fs.PrintDefaults()
	}
}

func parseConfig(args []string) (config, error) {
	var cfg config
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fs := flag.NewFlagSet("fxws-bench", flag.ContinueOnError)
		usage(fs)()
		return cfg, errors.New("fxws-bench: name a scenario first")
	}
	cfg.scenario = args[0]
	def, ok := scenarioDefaults[cfg.scenario]
	if !ok {
		return cfg, fmt.Errorf("fxws-bench: unknown scenario %q", cfg.scenario)
	}
	fs := flag.NewFlagSet("fxws-bench "+cfg.scenario, flag.ContinueOnError)
	fs.Usage = usage(fs)
	urls := fs.String("url", "ws://127.0.0.1:3000/ws", "WebSocket URL; comma-separated for several instances (clients round-robin)")
	apis := fs.String("api", "", "REST base URLs matching -url (default: http://<host:port> of each -url)")
	fs.IntVar(&cfg.n, "n", def.n, "number of clients")
	fs.Float64Var(&cfg.rate, "rate", def.rate, "published messages per second, in total (broadcast, rooms, cross, encrypted)")
	fs.DurationVar(&cfg.duration, "duration", 10*time.Second, "measured window (publishing, echo)")
	fs.IntVar(&cfg.size, "size", 100, "approximate payload (data) size in bytes")
	fs.IntVar(&cfg.rooms, "rooms", def.rooms, "rooms for the rooms scenario")
	fs.StringVar(&cfg.via, "via", "", "publish through rest or redis (default: redis when -redis is set, else rest; cross: rest)")
	fs.StringVar(&cfg.redisURL, "redis", "", "Redis URL for -via redis, e.g. redis://127.0.0.1:6379")
	pids := fs.String("server-pid", "", "server pid(s), comma-separated, for CPU and RSS from /proc")
	fs.IntVar(&cfg.procs, "procs", 0, fmt.Sprintf("load processes (default: enough for %d clients each; 1 = this process only)", maxClientsPerProc))
	fs.IntVar(&cfg.sources, "sources", 0, "loopback source addresses to spread clients over (default: one per 20000 clients, none below)")
	fs.StringVar(&cfg.srcBase, "src-base", "127.0.0.2", "first source address; the next ones count up")
	fs.DurationVar(&cfg.hold, "hold", 5*time.Second, "conns: how long to hold the connections before measuring RSS")
	fs.DurationVar(&cfg.heartbeat, "heartbeat", 20*time.Second, "application heartbeat interval per client (0: none)")
	fs.IntVar(&cfg.dialConcurrency, "dial-concurrency", 32, "connections being set up at once, per load process")
	fs.DurationVar(&cfg.connectTimeout, "connect-timeout", 15*time.Second, "limit for dial + authenticate of one client")
	fs.IntVar(&cfg.inflight, "inflight", 1, "echo: round trips in flight per client")
	fs.BoolVar(&cfg.textPad, "text-pad", false, "pad published payloads with words and numbers (compresses 2–4×, like real JSON) instead of \"xxx…\" (compresses ~100×)")
	fs.BoolVar(&cfg.deflate, "deflate", false, "offer permessage-deflate and send every message compressed, as browsers do (the server must accept, or the client fails)")
	fs.DurationVar(&cfg.settle, "settle", time.Second, "pause after connecting, before measuring")
	fs.DurationVar(&cfg.drain, "drain", 3*time.Second, "after publishing, wait this long without new arrivals before counting missing messages")
	fs.StringVar(&cfg.label, "label", "", "implementation under test, copied into the result (e.g. ours, original)")
	fs.StringVar(&cfg.caseName, "case", "", "name of the comparison case, copied into the result (e.g. bcast-1k)")
	fs.DurationVar(&cfg.drainMax, "drain-max", time.Minute, "longest wait for deliveries after publishing")
	fs.IntVar(&cfg.rep, "rep", 0, "repetition number copied into the result")
	fs.StringVar(&cfg.cpuProfile, "cpuprofile", "", "write a CPU profile of this (coordinating or only) load process to this file")
	if err := fs.Parse(args[1:]); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("fxws-bench: unexpected argument %q", fs.Arg(0))
	}
	cfg.urls = splitList(*urls)
	cfg.apis = splitList(*apis)
	if len(cfg.urls) == 0 {
		return cfg, errors.New("fxws-bench: -url is required")
	}
	if len(cfg.apis) == 0 {
		for _, u := range cfg.urls {
			p, err := url.Parse(u)
			if err != nil || p.Host == "" {
				return cfg, fmt.Errorf("fxws-bench: bad -url %q", u)
			}
			scheme := "http"
			if p.Scheme == "wss" {
				scheme = "https"
			}
			cfg.apis = append(cfg.apis, scheme+"://"+p.Host)
		}
	}
	if len(cfg.apis) != len(cfg.urls) {
		return cfg, errors.New("fxws-bench: -api needs one entry per -url")
	}
	var err error
	if cfg.serverPids, err = parsePids(*pids); err != nil {
		return cfg, err
	}
	if cfg.via == "" {
		cfg.via = "rest"
		if cfg.redisURL != "" && cfg.scenario != "cross" {
			cfg.via = "redis"
		}
	}
	if cfg.via != "rest" && cfg.via != "redis" {
		return cfg, fmt.Errorf("fxws-bench: -via must be rest or redis, not %q", cfg.via)
	}
	if cfg.via == "redis" && cfg.redisURL == "" {
		return cfg, errors.New("fxws-bench: -via redis needs -redis")
	}
	if cfg.scenario == "cross" && len(cfg.urls) < 2 {
		return cfg, errors.New("fxws-bench: cross needs at least two -url instances")
	}
	if cfg.scenario != "rooms" {
		cfg.rooms = 0
	}
	if cfg.n <= 0 || cfg.size < 0 || (cfg.rate <= 0 && needsPublisher(cfg.scenario)) {
		return cfg, errors.New("fxws-bench: -n and -rate must be positive")
	}
	if cfg.procs == 0 {
		cfg.procs = (cfg.n + maxClientsPerProc - 1) / maxClientsPerProc
	}
	if (cfg.n+cfg.procs-1)/cfg.procs > maxClientsPerProc {
		return cfg, fmt.Errorf("fxws-bench: %d clients over %d load processes exceeds %d per process (open-file limit); raise -procs", cfg.n, cfg.procs, maxClientsPerProc)
	}
	if cfg.sources == 0 && cfg.n > 20000 {
		cfg.sources = (cfg.n + 19999) / 20000
	}
	return cfg, nil
}

func needsPublisher(s string) bool { return s != "conns" && s != "echo" }

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// sourceAddrs returns k addresses counting up from base (127.0.0.2, .3, …).
func sourceAddrs(base string, k int) ([]string, error) {
	if k <= 0 {
		return nil, nil
	}
	ip := net.ParseIP(base).To4()
	if ip == nil {
		return nil, fmt.Errorf("fxws-bench: -src-base %q is not an IPv4 address", base)
	}
	v := uint32(ip[0])<<24 | uint32(ip[1])<<16 | uint32(ip[2])<<8 | uint32(ip[3])
	out := make([]string, k)
	for i := range out {
		x := v + uint32(i)
		out[i] = net.IPv4(byte(x>>24), byte(x>>16), byte(x>>8), byte(x)).String()
	}
	return out, nil
}

// jsonFloat rounds for readable JSON.
func round(v float64, digits int) float64 {
	p := 1.0
	for range digits {
		p *= 10
	}
	if v >= 0 {
		return float64(int64(v*p+0.5)) / p
	}
	return float64(int64(v*p-0.5)) / p
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// buildDemo builds examples/demo into dir and returns the binary's path.
func buildDemo(ctx context.Context, dir string) (string, error) {
	out := filepath.Join(dir, "demo")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./examples/demo")
	cmd.Dir = moduleRoot()
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("lab: build demo: %w: %s", err, b)
	}
	return out, nil
}

func moduleRoot() string {
	b, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "."
	}
	return filepath.Dir(strings.TrimSpace(string(b)))
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// server is one started demo instance.
type server struct {
	cmd       *exec.Cmd
	port      int
	debugAddr string
	exited    chan struct{}
	exitErr   error
}

func (s *server) wsURL() string   { return fmt.Sprintf("ws://127.0.0.1:%d/ws", s.port) }
func (s *server) httpURL() string { return fmt.Sprintf("http://127.0.0.1:%d", s.port) }
func (s *server) pid() int        { return s.cmd.Process.Pid }

// alive reports whether the process has not exited.
func (s *server) alive() bool {
	select {
	case <-s.exited:
		return false
	default:
		return true
	}
}

// startDemo runs the demo binary, pinned to cpu with taskset when cpu is
// not empty, and waits for /healthz.
func startDemo(ctx context.Context, bin, cpu string, env ...string) (*server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	dport, err := freePort()
	if err != nil {
		return nil, err
	}
	s := &server{port: port, debugAddr: fmt.Sprintf("127.0.0.1:%d", dport), exited: make(chan struct{})}
	args := []string{bin}
	if cpu != "" {
		if tp, err := exec.LookPath("taskset"); err == nil {
			args = append([]string{tp, "-c", cpu}, args...)
		}
	}
	s.cmd = exec.Command(args[0], args[1:]...)
	s.cmd.Env = append(os.Environ(), append([]string{
		"HOST=127.0.0.1", "PORT=" + strconv.Itoa(port), "DEMO_DEBUG_ADDR=" + s.debugAddr,
	}, env...)...)
	logf, _ := os.CreateTemp("", "fxws-lab-demo-*.log")
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("lab: start demo: %w", err)
	}
	go func() { s.exitErr = s.cmd.Wait(); close(s.exited) }()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if !s.alive() {
			return nil, fmt.Errorf("lab: demo exited on start: %v (log %s)", s.exitErr, logf.Name())
		}
		if r, err := http.Get(s.httpURL() + "/healthz"); err == nil {
			r.Body.Close()
			if r.StatusCode == 200 {
				return s, nil
			}
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	s.stop()
	return nil, fmt.Errorf("lab: demo not healthy in 20 s (log %s)", logf.Name())
}

func (s *server) stop() {
	if s == nil || !s.alive() {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}

// debugVars is what the demo's opt-in debug listener reports.
type debugVars struct {
	Goroutines int            `json:"goroutines"`
	HeapInuse  uint64         `json:"heapInuse"`
	Stats      map[string]any `json:"stats"`
	MemStats   struct {
		HeapInuse, HeapIdle, HeapReleased, StackInuse, StackSys, MSpanInuse, GCSys, OtherSys, Sys uint64
	} `json:"memStats"`
	// MemClasses is the runtime's /memory/classes/ breakdown, by class.
	MemClasses map[string]uint64 `json:"memClasses"`
}

func (s *server) vars() (debugVars, error) { return s.varsQuery("") }

// varsAfterGC makes the demo collect garbage and return it to the OS
// first.
func (s *server) varsAfterGC() (debugVars, error) { return s.varsQuery("?gc=1") }

func (s *server) varsQuery(q string) (debugVars, error) {
	var v debugVars
	r, err := http.Get("http://" + s.debugAddr + "/debug/vars" + q)
	if err != nil {
		return v, err
	}
	defer r.Body.Close()
	return v, json.NewDecoder(r.Body).Decode(&v)
}

// clientCount asks the REST API how many clients the instance holds.
func (s *server) clientCount() (int, error) {
	r, err := http.Get(s.httpURL() + "/ws-api/clients")
	if err != nil {
		return 0, err
	}
	defer r.Body.Close()
	var list []json.RawMessage
	err = json.NewDecoder(r.Body).Decode(&list)
	return len(list), err
}

// rssBytes reads VmRSS of pid from /proc.
func rssBytes(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			f := strings.Fields(line)
			if len(f) >= 2 {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				return kb * 1024
			}
		}
	}
	return 0
}

// rssParts reads the anonymous and file-backed parts of pid's resident set
// in MiB: what the process allocated, and what it mapped from its binary and
// libraries (code pages touched for the first time show up here).
func rssParts(pid int) map[string]float64 {
	out := map[string]float64{}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return out
	}
	for _, line := range strings.Split(string(b), "\n") {
		for _, k := range []string{"RssAnon", "RssFile"} {
			if strings.HasPrefix(line, k+":") {
				if f := strings.Fields(line); len(f) >= 2 {
					kb, _ := strconv.ParseInt(f[1], 10, 64)
					out[k+"_MiB"] = round2(float64(kb) / 1024)
				}
			}
		}
	}
	return out
}

// cpuTime reads utime+stime of pid from /proc (clock ticks of 10 ms).
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+s) * 10 * time.Millisecond
}

// sampler records a process's RSS peak and CPU over a phase.
type sampler struct {
	pid      int
	start    time.Time
	cpu0     time.Duration
	peak     int64
	stopping chan struct{}
	done     chan struct{}
}

func sample(pid int) *sampler {
	s := &sampler{pid: pid, start: time.Now(), cpu0: cpuTime(pid), peak: rssBytes(pid),
		stopping: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-s.stopping:
				return
			case <-t.C:
				s.peak = max(s.peak, rssBytes(pid))
			}
		}
	}()
	return s
}

// stop returns peak RSS and CPU utilisation (1.0 = one core) of the phase.
func (s *sampler) stop() (peak int64, cpu float64) {
	close(s.stopping)
	<-s.done
	peak = max(s.peak, rssBytes(s.pid))
	el := time.Since(s.start)
	return peak, float64(cpuTime(s.pid)-s.cpu0) / float64(el)
}

// redisServer is a throwaway redis-server on a fixed port (so that it can
// be restarted where the instances expect it).
type redisServer struct {
	port int
	cmd  *exec.Cmd
	done chan struct{}
}

// startRedis starts redis-server on port; args come first (a config file,
// for a Sentinel) and then more options.
func startRedis(port int, args ...string) (*redisServer, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("lab: redis-server not found: %w", err)
	}
	r := &redisServer{port: port, done: make(chan struct{})}
	r.cmd = exec.Command(bin, append(args, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")...)
	if err := r.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { _ = r.cmd.Wait(); close(r.done) }()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 200*time.Millisecond); err == nil {
			_, _ = c.Write([]byte("PING\r\n"))
			buf := make([]byte, 16)
			_ = c.SetReadDeadline(time.Now().Add(time.Second))
			n, _ := c.Read(buf)
			c.Close()
			if strings.HasPrefix(string(buf[:n]), "+PONG") {
				return r, nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	r.kill()
	return nil, fmt.Errorf("lab: redis-server did not start on %d", port)
}

func (r *redisServer) kill() {
	if r == nil {
		return
	}
	_ = r.cmd.Process.Kill()
	<-r.done
}

// saveHeapProfile writes the demo's heap profile, taken after a collection,
// to path (for `go tool pprof`).
func (s *server) saveHeapProfile(path string) error {
	r, err := http.Get("http://" + s.debugAddr + "/debug/pprof/heap?gc=1")
	if err != nil {
		return fmt.Errorf("heap profile: %w", err)
	}
	defer r.Body.Close()
	if r.StatusCode != http.StatusOK {
		return fmt.Errorf("heap profile: %s", r.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r.Body); err != nil {
		f.Close()
		return fmt.Errorf("heap profile: %w", err)
	}
	return f.Close()
}

package conformance

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// Implementations under test (CONFORMANCE_IMPL).
const (
	implIgnis = "ignis"
	implFxws  = "fxws"
)

// settings is what the suite knows about the server under test.
type settings struct {
	base        string // http://host:port
	wsPath      string
	impl        string
	authTimeout time.Duration
	hbInterval  time.Duration
	hbTimeout   time.Duration
	maxPayload  int
	serverCmd   string // starts a fresh instance (sh -c), "" if unknown
}

// wsURL is the WebSocket endpoint of the server under test.
func (s settings) wsURL() string {
	return "ws" + strings.TrimPrefix(s.base, "http") + s.wsPath
}

// env is the environment that gives an instance these settings.
func (s settings) env(port int) []string {
	return []string{
		"HOST=127.0.0.1",
		"PORT=" + strconv.Itoa(port),
		"WS_PATH=" + s.wsPath,
		"AUTH_TIMEOUT_MS=" + strconv.Itoa(int(s.authTimeout/time.Millisecond)),
		"HEARTBEAT_INTERVAL_MS=" + strconv.Itoa(int(s.hbInterval/time.Millisecond)),
		"HEARTBEAT_TIMEOUT_MS=" + strconv.Itoa(int(s.hbTimeout/time.Millisecond)),
		"MAX_PAYLOAD_LENGTH=" + strconv.Itoa(s.maxPayload),
		"REQUIRE_ENCRYPTION=",
		"QUIET=1",
	}
}

// cfg is set once by TestMain, read-only afterwards.
var cfg settings

// httpClient talks to the REST API; no keep-alive, so nothing lingers.
var httpClient = &http.Client{
	Timeout:   10 * time.Second,
	Transport: &http.Transport{DisableKeepAlives: true},
}

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ms := func(k string, def int) time.Duration { return time.Duration(envInt(k, def)) * time.Millisecond }
	cfg = settings{
		base:        strings.TrimRight(os.Getenv("CONFORMANCE_URL"), "/"),
		wsPath:      envStr("CONFORMANCE_WS_PATH", "/ws"),
		impl:        envStr("CONFORMANCE_IMPL", implFxws),
		authTimeout: ms("CONFORMANCE_AUTH_TIMEOUT_MS", 1000),
		hbInterval:  ms("CONFORMANCE_HEARTBEAT_INTERVAL_MS", 250),
		hbTimeout:   ms("CONFORMANCE_HEARTBEAT_TIMEOUT_MS", 2000),
		maxPayload:  envInt("CONFORMANCE_MAX_PAYLOAD_LENGTH", 131072),
		serverCmd:   os.Getenv("CONFORMANCE_SERVER_CMD"),
	}
	if cfg.impl != implIgnis && cfg.impl != implFxws {
		fmt.Fprintf(os.Stderr, "conformance: CONFORMANCE_IMPL=%q: want %q or %q\n", cfg.impl, implIgnis, implFxws)
		return 2
	}
	var own *instance
	if cfg.base == "" {
		// No target given: build our demo and run it on the embedded broker.
		cfg.impl = implFxws
		dir, err := os.MkdirTemp("", "fxws-conformance-")
		if err != nil {
			fmt.Fprintln(os.Stderr, "conformance:", err)
			return 1
		}
		defer os.RemoveAll(dir)
		bin := filepath.Join(dir, "demo")
		build := exec.Command("go", "build", "-o", bin, "../examples/demo")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "conformance: build ../examples/demo:", err)
			return 1
		}
		if cfg.serverCmd == "" {
			cfg.serverCmd = "REDIS_URL= exec " + shellQuote(bin)
		}
		own, err = startInstance(cfg)
		if err != nil {
			fmt.Fprintln(os.Stderr, "conformance:", err)
			return 1
		}
		cfg.base = own.base
	} else if err := waitHealthy(cfg.base, nil, 30*time.Second); err != nil {
		fmt.Fprintln(os.Stderr, "conformance:", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "conformance: impl=%s url=%s authTimeout=%v heartbeat=%v/%v maxPayload=%d\n",
		cfg.impl, cfg.base, cfg.authTimeout, cfg.hbInterval, cfg.hbTimeout, cfg.maxPayload)
	code := m.Run()
	encrypted.stop()
	deflating.stop()
	if own != nil {
		if err := own.stop(); err != nil && code == 0 {
			fmt.Fprintln(os.Stderr, "conformance: stop the demo:", err)
		}
	}
	httpClient.CloseIdleConnections()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "conformance: goleak:", err)
			code = 1
		}
	}
	return code
}

// instance is a server process the suite started.
type instance struct {
	cmd    *exec.Cmd
	base   string
	exited chan struct{}

	mu  sync.Mutex
	out bytes.Buffer
}

// Write collects the process's output (shown when something fails).
func (p *instance) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.out.Len() < 1<<20 {
		p.out.Write(b)
	}
	return len(b), nil
}

func (p *instance) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// startInstance runs s.serverCmd on a free port with s's timers (and
// extra environment, which wins) and waits for /healthz.
func startInstance(s settings, extra ...string) (*instance, error) {
	if s.serverCmd == "" {
		return nil, fmt.Errorf("no CONFORMANCE_SERVER_CMD to start an instance with")
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	p := &instance{base: fmt.Sprintf("http://127.0.0.1:%d", port), exited: make(chan struct{})}
	p.cmd = exec.Command("sh", "-c", s.serverCmd)
	p.cmd.Env = append(append(os.Environ(), s.env(port)...), extra...)
	p.cmd.Stdout, p.cmd.Stderr = p, p
	// Its own process group, so that stop reaches the server even when
	// the command is a wrapper script.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %q: %w", s.serverCmd, err)
	}
	go func() { _ = p.cmd.Wait(); close(p.exited) }()
	if err := waitHealthy(p.base, p.exited, 60*time.Second); err != nil {
		_ = p.kill()
		return nil, fmt.Errorf("%w; output:\n%s", err, p.output())
	}
	return p, nil
}

// signal sends sig to the instance's process group.
func (p *instance) signal(sig syscall.Signal) error {
	return syscall.Kill(-p.cmd.Process.Pid, sig)
}

// stop asks the instance to shut down (SIGTERM) and waits for it to exit.
func (p *instance) stop() error {
	select {
	case <-p.exited:
		return nil
	default:
	}
	if err := p.signal(syscall.SIGTERM); err != nil {
		return err
	}
	select {
	case <-p.exited:
		return nil
	case <-time.After(15 * time.Second):
		_ = p.kill()
		return fmt.Errorf("no exit within 15s of SIGTERM")
	}
}

func (p *instance) kill() error {
	err := p.signal(syscall.SIGKILL)
	<-p.exited
	return err
}

// waitHealthy polls GET /healthz until it answers {"ok":true}.
func waitHealthy(base string, exited <-chan struct{}, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		resp, err := httpClient.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s/healthz not ready within %v (last error: %v)", base, limit, err)
		}
		select {
		case <-exited:
			return fmt.Errorf("server exited before %s/healthz answered", base)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func freePort() (int, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func envStr(k, def string) string {
	if v := strings.TrimSpace(os.Getenv(k)); v != "" {
		return v
	}
	return def
}

func envInt(k string, def int) int {
	v := envStr(k, "")
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		fmt.Fprintf(os.Stderr, "conformance: %s=%q is not a positive integer; using %d\n", k, v, def)
		return def
	}
	return n
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// sigterm is what a graceful stop sends.
const sigterm = syscall.SIGTERM

// dedicated is an instance of its own with extra settings, for rows that
// need the server configured otherwise; started on first use, stopped by
// TestMain.
type dedicated struct {
	once sync.Once
	inst *instance
	err  error
}

// wsURL starts the instance with s and env once, and returns its
// WebSocket endpoint; a test without a command to start it is skipped.
func (d *dedicated) wsURL(t *testing.T, s settings, env ...string) string {
	t.Helper()
	if s.serverCmd == "" {
		t.Skip("needs CONFORMANCE_SERVER_CMD (or the suite starting the demo itself)")
	}
	d.once.Do(func() { d.inst, d.err = startInstance(s, env...) })
	if d.err != nil {
		t.Fatal(d.err)
	}
	return "ws" + strings.TrimPrefix(d.inst.base, "http") + s.wsPath
}

func (d *dedicated) stop() {
	if d.inst != nil {
		_ = d.inst.stop()
	}
}

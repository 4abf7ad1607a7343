package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	websocket "github.com/fxws/websocket"
	"github.com/fxws/websocket/fxtest"
	"github.com/fxws/websocket/helper"
	"go.uber.org/fx"
	"go.uber.org/goleak"
	"go.uber.org/zap"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// backend makes the config of a fresh store: each call, an empty one.
type backend struct {
	name   string
	config func(t *testing.T) config
}

// backends are the two stores: in memory with the in-process broker, and
// a real Redis (a redis-server per call) for both.
var backends = []backend{
	{"memory", func(*testing.T) config { return config{} }},
	{"redis", func(t *testing.T) config { return config{RedisURL: fxtest.StartRedis(t).URL()} }},
}

// forEachBackend runs test once per backend.
func forEachBackend(t *testing.T, test func(t *testing.T, b backend)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { test(t, b) })
	}
}

// start runs one instance of the app on cfg, as main does but for the
// listener, which fxtest brings; extra options change it for a test.
func start(t *testing.T, cfg config, extra ...fx.Option) *fxtest.Server {
	t.Helper()
	return fxtest.StartServer(t, appOptions(cfg, zap.NewNop()), fx.Options(extra...))
}

// afterRead has the app store a notification and send it live right after
// the first read of a backlog for which when(after) holds, before that
// backlog is sent: the worst moment for a notification to be stored.
func afterRead(when func(after uint64) bool) fx.Option {
	return fx.Decorate(func(s Store, ref *websocket.HelperRef) Store {
		return &hookedStore{Store: s, ref: ref, when: when}
	})
}

type hookedStore struct {
	Store
	ref  *websocket.HelperRef
	when func(after uint64) bool
	done atomic.Bool
}

func (s *hookedStore) Since(ctx context.Context, user string, after uint64) ([]Notification, uint64, error) {
	kept, last, err := s.Store.Since(ctx, user, after)
	if err == nil && s.when(after) && s.done.CompareAndSwap(false, true) {
		var n Notification
		if n, err = s.Store.Add(ctx, user, json.RawMessage(`"stored after the read"`)); err == nil {
			err = s.ref.Helper().SendToUser(ctx, user, EventNotification, n)
		}
	}
	return kept, last, err
}

// web makes one connection per request, so that none is left behind.
var web = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}

// notify posts a notification for user through the route, and returns its
// number.
func notify(t *testing.T, srv *fxtest.Server, user, text string) uint64 {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"text": text})
	resp, err := web.Post(srv.HTTPURL()+"/notify/"+user, "application/json", strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r struct{ Seq uint64 }
	if err := json.NewDecoder(resp.Body).Decode(&r); resp.StatusCode != http.StatusOK || err != nil || r.Seq == 0 {
		t.Fatalf("notify %s: %s (%v)", user, resp.Status, err)
	}
	return r.Seq
}

// notifyAll posts count notifications and returns their numbers.
func notifyAll(t *testing.T, srv *fxtest.Server, user string, count int) []uint64 {
	t.Helper()
	var seqs []uint64
	for range count {
		seqs = append(seqs, notify(t, srv, user, "n"))
	}
	return seqs
}

// connect connects d, with its Last, to srv.
func connect(t *testing.T, d *Device, srv *fxtest.Server) {
	t.Helper()
	if err := d.Connect(context.Background(), srv.URL()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
}

// outcome is what a device did in a run.
type outcome struct {
	applied []uint64 // numbers applied, in order
	resets  []uint64 // the numbers resets moved Last to
}

// run lets the device handle the server's messages until it has applied
// count notifications, within 10 s.
func run(t *testing.T, d *Device, count int) outcome {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var o outcome
	for len(o.applied) < count {
		u, err := d.Next(ctx)
		if err != nil {
			t.Fatalf("after applying %v (resets %v): %v", o.applied, o.resets, err)
		}
		if u.Reset {
			o.resets = append(o.resets, u.From)
		}
		for _, n := range u.Apply {
			o.applied = append(o.applied, n.Seq)
		}
	}
	return o
}

// closed lets the device handle what comes until its connection ends, and
// returns how it ended (ErrClosed, with the close code).
func closed(ctx context.Context, d *Device) error {
	for {
		if _, err := d.Next(ctx); err != nil {
			return err
		}
	}
}

// seq is [from, to].
func seq(from, to uint64) []uint64 {
	var s []uint64
	for n := from; n <= to; n++ {
		s = append(s, n)
	}
	return s
}

func expectApplied(t *testing.T, o outcome, want []uint64) {
	t.Helper()
	if !slices.Equal(o.applied, want) {
		t.Fatalf("applied %v, want %v", o.applied, want)
	}
}

// TestOfflineDeviceCatchesUp: what is stored while a device is away
// reaches it when it connects again, in order, once.
func TestOfflineDeviceCatchesUp(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		srv := start(t, b.config(t))
		d := &Device{Token: "alice"}
		connect(t, d, srv)
		notifyAll(t, srv, "alice", 2)
		expectApplied(t, run(t, d, 2), seq(1, 2))

		d.Close()
		if got := notifyAll(t, srv, "alice", 5); !slices.Equal(got, seq(3, 7)) {
			t.Fatalf("stored as %v", got)
		}
		// (#1 may have come twice: posted once `connected` was in, it may
		// be in the backlog too. Nothing is posted during this backlog.)
		dropped := d.Dropped
		connect(t, d, srv)
		o := run(t, d, 5)
		expectApplied(t, o, seq(3, 7))
		if len(o.resets) != 0 || d.Dropped != dropped {
			t.Errorf("resets %v, %d dropped", o.resets, d.Dropped-dropped)
		}
		// Live again.
		notify(t, srv, "alice", "live")
		expectApplied(t, run(t, d, 1), []uint64{8})
	})
}

// TestOverlapDuringAuthentication: notifications stored while a device
// connects are applied once each, in order, whenever they were stored:
// while it authenticates (#3), between its `connected` and the read of its
// backlog (#4: live and in the backlog, dropped once), and between that
// read and the backlog's send (#5: live only, and before the backlog).
func TestOverlapDuringAuthentication(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		srv := start(t, b.config(t),
			fx.Decorate(fx.Annotate(func(n *Notifier, next helper.AuthenticateFunc) helper.AuthenticateFunc {
				return func(ctx context.Context, req helper.AuthenticateRequest) (*helper.AuthResult, error) {
					res, err := next(ctx, req)
					if err == nil && res != nil {
						_, err = n.Notify(ctx, res.UserID, json.RawMessage(`"stored while authenticating"`))
					}
					return res, err
				}
			}, fx.ParamTags(``, websocket.AuthenticateHandlerKey), fx.ResultTags(websocket.AuthenticateHandlerKey))),
			fx.Decorate(fx.Annotate(func(n *Notifier, next helper.ClientConnectedFunc) helper.ClientConnectedFunc {
				return func(ctx context.Context, info helper.ClientInfo) error {
					if _, err := n.Notify(ctx, info.UserID, json.RawMessage(`"stored after connected"`)); err != nil {
						return err
					}
					return next(ctx, info)
				}
			}, fx.ParamTags(``, websocket.ClientConnectedHandlerKey), fx.ResultTags(websocket.ClientConnectedHandlerKey))),
			afterRead(func(uint64) bool { return true }),
		)
		notifyAll(t, srv, "alice", 2) // while offline
		d := &Device{Token: "alice"}
		connect(t, d, srv)
		expectApplied(t, run(t, d, 5), seq(1, 5))
		if d.Dropped < 1 {
			t.Errorf("%d dropped: #4 should have come live and in the backlog", d.Dropped)
		}
		notifyAll(t, srv, "alice", 3)
		expectApplied(t, run(t, d, 3), seq(6, 8))
	})
}

// TestGapAsksForCatchUp: a live notification lost on the way (stored, not
// sent) shows as a gap when the next one comes; the device asks, and ends
// with every number once.
func TestGapAsksForCatchUp(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		var store Store
		srv := start(t, b.config(t), fx.Populate(&store))
		d := &Device{Token: "alice"}
		connect(t, d, srv)
		notifyAll(t, srv, "alice", 2)
		expectApplied(t, run(t, d, 2), seq(1, 2))

		for range 2 { // #3 and #4 lost
			if _, err := store.Add(context.Background(), "alice", json.RawMessage(`"lost"`)); err != nil {
				t.Fatal(err)
			}
		}
		notify(t, srv, "alice", "after the loss") // #5: live, and early
		expectApplied(t, run(t, d, 3), seq(3, 5))
		notify(t, srv, "alice", "next")
		expectApplied(t, run(t, d, 1), []uint64{6})
	})
}

// TestTrimmedBacklogResets: a device further behind than the backlog is
// told, with the number it can go on from, and gets what is kept.
func TestTrimmedBacklogResets(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		cfg := b.config(t)
		cfg.Backlog = 5
		srv := start(t, cfg)
		d := &Device{Token: "alice"}
		connect(t, d, srv)
		notifyAll(t, srv, "alice", 2)
		expectApplied(t, run(t, d, 2), seq(1, 2))

		d.Close()
		notifyAll(t, srv, "alice", 10) // 3…12, of which 8…12 are kept
		connect(t, d, srv)
		o := run(t, d, 5)
		expectApplied(t, o, seq(8, 12))
		if !slices.Equal(o.resets, []uint64{7}) {
			t.Fatalf("resets %v, want [7]", o.resets)
		}
		// A device that is behind by exactly the backlog is not reset.
		d.Close()
		notifyAll(t, srv, "alice", 5)
		connect(t, d, srv)
		if o := run(t, d, 5); !slices.Equal(o.applied, seq(13, 17)) || len(o.resets) != 0 {
			t.Fatalf("applied %v, resets %v; want 13…17, no reset", o.applied, o.resets)
		}
	})
}

// TestLostStoreResets: a device whose number is beyond the store's (the
// store lost its data: a Redis restarted without persistence, a memory
// store with its process) is started over, and gets the new numbers,
// also those that came live before its backlog.
func TestLostStoreResets(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		srv := start(t, b.config(t))
		d := &Device{Token: "alice"}
		connect(t, d, srv)
		notifyAll(t, srv, "alice", 4)
		expectApplied(t, run(t, d, 4), seq(1, 4))
		d.Close()

		// An empty store; #2 comes live between the read of the device's
		// backlog and its send: a number the device holds from the old
		// store, which it drops, and has to ask for again.
		fresh := start(t, b.config(t), afterRead(func(after uint64) bool { return after == 0 }))
		notify(t, fresh, "alice", "new #1")
		connect(t, d, fresh)
		o := run(t, d, 2)
		expectApplied(t, o, seq(1, 2))
		if !slices.Equal(o.resets, []uint64{0}) {
			t.Fatalf("resets %v, want [0]", o.resets)
		}
		notify(t, fresh, "alice", "new #3")
		expectApplied(t, run(t, d, 1), []uint64{3})
	})
}

// TestFailedReadClosesDevice: a backlog that cannot be read (the store
// unreachable) closes the device, which would otherwise wait for an answer
// that never comes; connecting again, it gets the backlog.
func TestFailedReadClosesDevice(t *testing.T) {
	srv := start(t, config{}, fx.Decorate(func(s Store) Store { return &failingStore{Store: s} }))
	notifyAll(t, srv, "alice", 2)
	d := &Device{Token: "alice"}
	connect(t, d, srv)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := closed(ctx, d); !strings.Contains(err.Error(), fmt.Sprintf("code %d", CloseRetry)) {
		t.Fatalf("%v, want close %d", err, CloseRetry)
	}
	connect(t, d, srv)
	expectApplied(t, run(t, d, 2), seq(1, 2))
}

// failingStore fails its first read.
type failingStore struct {
	Store
	failed atomic.Bool
}

func (s *failingStore) Since(ctx context.Context, user string, after uint64) ([]Notification, uint64, error) {
	if s.failed.CompareAndSwap(false, true) {
		return nil, 0, errors.New("store unreachable")
	}
	return s.Store.Since(ctx, user, after)
}

// TestDeviceMovesToAnotherInstance: two instances on one Redis; a device
// leaves one, notifications are stored through the other, and it
// reconnects to the other: it gets them from the store, then live what
// the first instance sends.
func TestDeviceMovesToAnotherInstance(t *testing.T) {
	cfg := config{RedisURL: fxtest.StartRedis(t).URL()}
	a, b := start(t, cfg), start(t, cfg)
	d := &Device{Token: "alice"}
	connect(t, d, a)
	notify(t, a, "alice", "through a")
	notify(t, b, "alice", "through b") // live across instances
	expectApplied(t, run(t, d, 2), seq(1, 2))

	d.Close()
	notifyAll(t, b, "alice", 3)
	notifyAll(t, a, "alice", 2)
	dropped := d.Dropped
	connect(t, d, b)
	expectApplied(t, run(t, d, 5), seq(3, 7))
	notify(t, a, "alice", "through a, live to b")
	expectApplied(t, run(t, d, 1), []uint64{8})
	if d.Dropped != dropped {
		t.Errorf("%d dropped", d.Dropped-dropped)
	}
}

// TestBrokerRestoredAsksDevices: Redis crashes and comes back empty; a
// notification stored while the instance subscribes again (so its live
// send reaches no one) comes once the broker-restored handler has asked
// the devices.
func TestBrokerRestoredAsksDevices(t *testing.T) {
	r := fxtest.StartRedis(t)
	release := make(chan struct{})
	var store Store
	srv := start(t, config{RedisURL: r.URL()},
		fx.Populate(&store),
		// Held until the notification is stored, so that it surely falls
		// in the window a real restoration leaves open by chance.
		fx.Decorate(fx.Annotate(func(next helper.BrokerRestoredFunc) helper.BrokerRestoredFunc {
			return func(ctx context.Context, info helper.BrokerRestoredInfo) error {
				select {
				case <-release:
				case <-ctx.Done():
				}
				return next(ctx, info)
			}
		}, fx.ParamTags(websocket.BrokerRestoredHandlerKey), fx.ResultTags(websocket.BrokerRestoredHandlerKey))))
	d := &Device{Token: "alice"}
	connect(t, d, srv)
	notifyAll(t, srv, "alice", 2)
	expectApplied(t, run(t, d, 2), seq(1, 2))

	r.Restart() // no persistence: the store numbers from 1 again
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		// The app's connections to Redis were cut: a first try may fail.
		_, err := store.Add(ctx, "alice", json.RawMessage(`"while resubscribing"`))
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	close(release)
	o := run(t, d, 1)
	expectApplied(t, o, []uint64{1})
	if !slices.Equal(o.resets, []uint64{0}) {
		t.Fatalf("resets %v, want [0]", o.resets)
	}
	notify(t, srv, "alice", "live again")
	expectApplied(t, run(t, d, 1), []uint64{2})
}

// TestWorker: the -notify program stores and sends through the emitter,
// and skips the live send while the user is online nowhere.
func TestWorker(t *testing.T) {
	cfg := config{RedisURL: fxtest.StartRedis(t).URL()}
	srv := start(t, cfg)
	ctx := context.Background()
	var out strings.Builder
	if err := runWorker(ctx, cfg, "bob", `{"text":"while away"}`, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "stored #1; bob is online nowhere") {
		t.Fatalf("worker said %q", out.String())
	}
	d := &Device{Token: "bob"}
	connect(t, d, srv)
	expectApplied(t, run(t, d, 1), []uint64{1})

	out.Reset()
	if err := runWorker(ctx, cfg, "bob", `{"text":"live"}`, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "stored #2 and sent live") {
		t.Fatalf("worker said %q", out.String())
	}
	expectApplied(t, run(t, d, 1), []uint64{2})

	if err := runWorker(ctx, config{}, "bob", `{}`, io.Discard); err == nil {
		t.Error("a worker without REDIS_URL ran")
	}
}

// TestDeviceProgram: the -device program prints what it applies, and
// reconnects when the server closes it.
func TestDeviceProgram(t *testing.T) {
	srv := start(t, config{})
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- runDevice(ctx, config{Addr: srv.Addr()}, "carol", 0, pw)
		pw.Close()
	}()
	lines := bufio.NewScanner(pr)
	expectLine := func(prefix string) {
		t.Helper()
		for lines.Scan() {
			if strings.HasPrefix(lines.Text(), prefix) {
				return
			}
		}
		t.Fatalf("no line %q", prefix)
	}
	expectLine("connected as carol, last #0")
	notify(t, srv, "carol", "one")
	expectLine(`#1 {"text":"one"}`)
	if n, err := srv.Helper().DisconnectUser("carol", CloseRetry, "Catch-up failed"); n != 1 || err != nil {
		t.Fatalf("disconnect: %d %v", n, err)
	}
	expectLine("disconnected")
	notify(t, srv, "carol", "two")
	expectLine("connected as carol, last #1")
	expectLine(`#2 {"text":"two"}`)
	cancel()
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestProgram builds the program, runs it as `go run` would on a machine
// without Redis, does what it prints, and stops it with SIGTERM.
func TestProgram(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "notifications")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "ADDR=127.0.0.1:0", "REDIS_URL=")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 100) // the usage is a dozen lines
	exited := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		exited <- cmd.Wait() // after the reads: Wait closes the pipe
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		err := <-exited
		exited <- err
		if t.Failed() {
			t.Logf("exit: %v\nlogs:\n%s", err, logs.String())
		}
	})
	timeout := time.After(30 * time.Second)
	expectLine := func(re string) []string {
		t.Helper()
		for {
			select {
			case line, ok := <-lines:
				if !ok {
					t.Fatalf("the program printed no line matching %s", re)
				}
				if m := regexp.MustCompile(re).FindStringSubmatch(line); m != nil {
					return m
				}
			case <-timeout:
				t.Fatalf("no line matching %s", re)
			}
		}
	}
	addr := expectLine(`^notifications on ws://(\S+)/ws, with an in-memory store`)[1]
	curl := expectLine(`^  curl -d '(.+)' (http://\S+/notify/alice)$`)

	d := &Device{Token: "alice"}
	if err := d.Connect(context.Background(), "ws://"+addr+"/ws"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	resp, err := web.Post(curl[2], "application/x-www-form-urlencoded", strings.NewReader(curl[1]))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	o := run(t, d, 1)
	expectApplied(t, o, []uint64{1})

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := closed(ctx, d); !strings.Contains(err.Error(), "code 1001") {
		t.Errorf("after SIGTERM: %v, want close 1001", err)
	}
	select {
	case err := <-exited:
		exited <- err
		if err != nil {
			t.Errorf("exit: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("no exit after SIGTERM")
	}
}

// Package redistest starts real redis-server processes for tests: a single
// node or a small Redis Cluster, each on random local ports, stopped when the
// test ends. Tests never touch a Redis they did not start. When no
// redis-server binary is installed the test is skipped with a message that
// says how to get one (CI installs it through .ci/run).
package redistest

import (
	"bytes"
	"context"
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
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Binary is the redis-server executable looked up in PATH.
const Binary = "redis-server"

// Server is one redis-server process on 127.0.0.1.
type Server struct {
	tb      testing.TB
	port    int
	dir     string
	conf    string // config file given first, for modes that need one (Sentinel)
	args    []string
	mu      sync.Mutex
	cmd     *exec.Cmd
	waitErr chan error
	stderr  *bytes.Buffer
}

// lookPath returns the redis-server path or skips the test.
func lookPath(tb testing.TB) string {
	tb.Helper()
	p, err := exec.LookPath(Binary)
	if err != nil {
		if os.Getenv("CI") != "" { // CI installs it: a skip there would hide every Redis test
			tb.Fatalf("redistest: %s not found in PATH under CI (.ci/run installs it): %v", Binary, err)
		}
		tb.Skipf("redistest: %s not found in PATH (install the redis-server package; CI does it in .ci/run): %v", Binary, err)
	}
	return p
}

// Start runs a fresh single-node redis-server on a random port and stops
// it when the test ends. extra are more redis-server arguments.
func Start(tb testing.TB, extra ...string) *Server {
	tb.Helper()
	return start(tb, "", extra...)
}

func start(tb testing.TB, conf string, extra ...string) *Server {
	tb.Helper()
	lookPath(tb)
	s := &Server{tb: tb, dir: tb.TempDir(), conf: conf, args: extra}
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		s.port, err = freePort()
		if err != nil {
			continue
		}
		if err = s.start(); err == nil {
			break
		}
	}
	if err != nil {
		tb.Fatalf("redistest: start redis-server: %v", err)
	}
	tb.Cleanup(s.Kill)
	return s
}

// freePort asks the kernel for a free TCP port. Another process may take it
// before redis-server binds it; Start retries in that case.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (s *Server) start() error {
	var args []string
	if s.conf != "" {
		args = append(args, s.conf)
	}
	args = append(args,
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", s.dir,
		"--daemonize", "no",
		"--loglevel", "warning",
		"--protected-mode", "no",
	)
	args = append(args, s.args...)
	cmd := exec.Command(Binary, args...)
	var stderr bytes.Buffer
	cmd.Stdout = &stderr
	cmd.Stderr = &stderr
	orphanGuard(cmd)
	if err := cmd.Start(); err != nil {
		return err
	}
	waitErr := make(chan error, 1)
	go func() { waitErr <- cmd.Wait() }()
	s.mu.Lock()
	s.cmd, s.waitErr, s.stderr = cmd, waitErr, &stderr
	s.mu.Unlock()
	if err := s.waitReady(waitErr); err != nil {
		if !errors.Is(err, errExited) {
			_ = cmd.Process.Kill()
			<-waitErr
		} // else waitReady took the exit: waiting again would wait for ever
		s.mu.Lock()
		s.cmd = nil
		s.mu.Unlock()
		return fmt.Errorf("%w (output: %s)", err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// errExited: redis-server exited before it answered (a port another
// process took first, say).
var errExited = errors.New("redis-server exited")

// waitReady waits until the server answers PING. It takes the process's
// exit from exited if it comes first, and says so with errExited.
func (s *Server) waitReady(exited <-chan error) error {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return fmt.Errorf("%w: %v", errExited, err)
		default:
		}
		conn, err := net.DialTimeout("tcp", s.Addr(), 200*time.Millisecond)
		if err == nil {
			_ = conn.SetDeadline(time.Now().Add(time.Second))
			_, err = conn.Write([]byte("PING\r\n"))
			buf := make([]byte, 7)
			if err == nil {
				_, err = conn.Read(buf)
			}
			conn.Close()
			if err == nil && string(buf) == "+PONG\r\n" {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return errors.New("redis-server did not answer PING within 10s")
}

// Addr is host:port of the server.
func (s *Server) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

// URL is the redis:// URL of the server.
func (s *Server) URL() string { return "redis://" + s.Addr() }

// Port is the server's TCP port.
func (s *Server) Port() int { return s.port }

// Client returns a new go-redis client for the server, closed when the
// test ends. opts may adjust its options.
func (s *Server) Client(opts ...func(*redis.Options)) *redis.Client {
	o := &redis.Options{Addr: s.Addr()}
	for _, f := range opts {
		f(o)
	}
	c := redis.NewClient(o)
	s.tb.Cleanup(func() { _ = c.Close() })
	return c
}

// Kill stops the server at once (SIGKILL), as a crash would. It is
// idempotent and also runs when the test ends.
func (s *Server) Kill() {
	s.mu.Lock()
	cmd, waitErr := s.cmd, s.waitErr
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-waitErr
}

// Restart starts the server again on the same port, killing it first if
// it runs (it used to start nothing then, the old server answering the
// readiness check: found in a trial). The data set is empty, as after a
// crash without persistence.
func (s *Server) Restart() {
	s.tb.Helper()
	s.Kill()
	var err error
	// The port may linger briefly after a kill; retry a few times.
	for attempt := 0; attempt < 20; attempt++ {
		if err = s.start(); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.tb.Fatalf("redistest: restart redis-server on %s: %v", s.Addr(), err)
}

// Cluster is a Redis Cluster on random local ports, every slot assigned
// to its masters (Nodes), with a replica for each in Replicas when started
// by StartReplicatedCluster.
type Cluster struct {
	tb       testing.TB
	Nodes    []*Server
	Replicas []*Server
}

// StartCluster starts n redis-server processes in cluster mode, spreads
// the 16384 slots over them, joins them and waits until the cluster state
// is ok on every node. It is stopped when the test ends.
func StartCluster(tb testing.TB, n int) *Cluster {
	tb.Helper()
	return startCluster(tb, n, false)
}

// StartReplicatedCluster is StartCluster with a replica for each master,
// for failover tests: a master that stops answering for the node timeout
// (2 s) is replaced by its replica.
func StartReplicatedCluster(tb testing.TB, masters int) *Cluster {
	tb.Helper()
	return startCluster(tb, masters, true)
}

func startCluster(tb testing.TB, n int, replicated bool) *Cluster {
	tb.Helper()
	if n < 1 {
		tb.Fatalf("redistest: a cluster needs at least one node")
	}
	c := &Cluster{tb: tb}
	node := func() *Server {
		return Start(tb,
			"--cluster-enabled", "yes",
			"--cluster-config-file", filepath.Join(tb.TempDir(), "nodes.conf"),
			"--cluster-node-timeout", "2000",
		)
	}
	for i := 0; i < n; i++ {
		c.Nodes = append(c.Nodes, node())
		if replicated {
			c.Replicas = append(c.Replicas, node())
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.form(ctx); err != nil {
		tb.Fatalf("redistest: form cluster: %v", err)
	}
	return c
}

func (c *Cluster) form(ctx context.Context) error {
	all := append(slices.Clone(c.Nodes), c.Replicas...)
	clients := make([]*redis.Client, len(all))
	for i, s := range all {
		clients[i] = redis.NewClient(&redis.Options{Addr: s.Addr()})
		defer clients[i].Close()
	}
	// A distinct config epoch for each node before they meet, as redis-cli
	// --cluster create gives: otherwise every node starts at 0, and the
	// collisions are resolved by gossip for a while after the cluster is
	// ok, every node having its own view of the others' epochs meanwhile
	// (by which a slot's owner is decided when two nodes claim it).
	for i, cl := range clients {
		if err := cl.Do(ctx, "CLUSTER", "SET-CONFIG-EPOCH", i+1).Err(); err != nil {
			return fmt.Errorf("node %s: cluster set-config-epoch %d: %w", all[i].Addr(), i+1, err)
		}
	}
	const slots = 16384
	per := slots / len(c.Nodes)
	for i, cl := range clients[:len(c.Nodes)] {
		lo, hi := i*per, (i+1)*per-1
		if i == len(c.Nodes)-1 {
			hi = slots - 1
		}
		if err := cl.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", lo, hi).Err(); err != nil {
			return fmt.Errorf("node %s: addslotsrange %d-%d: %w", c.Nodes[i].Addr(), lo, hi, err)
		}
	}
	for i := 1; i < len(clients); i++ {
		if err := clients[i].ClusterMeet(ctx, "127.0.0.1", strconv.Itoa(c.Nodes[0].Port())).Err(); err != nil {
			return fmt.Errorf("node %s: cluster meet: %w", all[i].Addr(), err)
		}
	}
	for i, r := range c.Replicas {
		if err := c.replicate(ctx, clients[len(c.Nodes)+i], clients[i], r); err != nil {
			return err
		}
	}
	for {
		ok := true
		for _, cl := range clients {
			info, err := cl.ClusterInfo(ctx).Result()
			if err != nil || !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, "cluster_known_nodes:"+strconv.Itoa(len(clients))) {
				ok = false
				break
			}
			// Known is not yet linked: a classic PUBLISH reaches the
			// other nodes over the cluster bus, and one sent while a
			// link is still being set up is lost for that node's
			// subscribers (a fleet test failed that way once).
			nodes, err := cl.ClusterNodes(ctx).Result()
			if err != nil || !allLinked(nodes) {
				ok = false
				break
			}
		}
		for _, cl := range clients[len(c.Nodes):] { // replicas in sync
			info, err := cl.Info(ctx, "replication").Result()
			if err != nil || !strings.Contains(info, "master_link_status:up") {
				ok = false
			}
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster state not ok: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// replicate makes replica (rc) a replica of master (mc), once it knows the
// master's node id.
func (c *Cluster) replicate(ctx context.Context, rc, mc *redis.Client, replica *Server) error {
	id, err := mc.Do(ctx, "CLUSTER", "MYID").Text()
	if err != nil {
		return fmt.Errorf("master id: %w", err)
	}
	for {
		err := rc.Do(ctx, "CLUSTER", "REPLICATE", id).Err()
		if err == nil {
			return nil
		}
		// Until the gossip has brought the master to the replica:
		// "Unknown node".
		select {
		case <-ctx.Done():
			return fmt.Errorf("node %s: cluster replicate: %w (last: %v)", replica.Addr(), ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// allLinked reports whether a CLUSTER NODES reply shows every node with its
// bus link connected and out of the handshake.
func allLinked(nodes string) bool {
	for _, line := range strings.Split(strings.TrimSpace(nodes), "\n") {
		f := strings.Fields(line)
		// id addr flags master ping-sent pong-recv epoch link-state [slots]
		if len(f) < 8 || f[7] != "connected" || strings.Contains(f[2], "handshake") || strings.Contains(f[2], "noaddr") {
			return false
		}
	}
	return true
}

// Addrs are the host:port of every node.
func (c *Cluster) Addrs() []string {
	out := make([]string, len(c.Nodes))
	for i, s := range c.Nodes {
		out[i] = s.Addr()
	}
	return out
}

// Client returns a new cluster client, closed when the test ends.
func (c *Cluster) Client(opts ...func(*redis.ClusterOptions)) *redis.ClusterClient {
	o := &redis.ClusterOptions{Addrs: c.Addrs()}
	for _, f := range opts {
		f(o)
	}
	cl := redis.NewClusterClient(o)
	c.tb.Cleanup(func() { _ = cl.Close() })
	return cl
}

// Available reports whether redis-server is installed, for code that wants
// to decide without skipping.
func Available() bool {
	_, err := exec.LookPath(Binary)
	return err == nil
}

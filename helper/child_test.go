package helper_test

// A child process that holds many client connections, so that benchmarks can
// measure the server alone: the server process keeps one file and no client
// memory per connection, and the 20 000-open-files limit applies to each
// process separately.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

const (
	childEnv      = "FXWS_HELPER_TEST_CHILD" // "drain" or "idle"
	childURLEnv   = "FXWS_HELPER_TEST_URL"
	childConnsEnv = "FXWS_HELPER_TEST_CONNS"
)

// runChild dials the connections, authenticates each, then (drain) reads and
// discards everything or (idle) reads nothing. It prints "ready" once all are
// dialed, then answers each stdin line with the number of bytes read so far;
// it exits when stdin closes.
func runChild(mode string) int {
	url := os.Getenv(childURLEnv)
	n, _ := strconv.Atoi(os.Getenv(childConnsEnv))
	var read atomic.Int64
	conns := make([]net.Conn, n)
	var wg sync.WaitGroup
	var failed atomic.Value
	next := atomic.Int64{}
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				conn, br, _, err := ws.Dial(ctx, url)
				cancel()
				if err != nil {
					failed.Store(err.Error())
					return
				}
				if br != nil {
					ws.PutReader(br)
				}
				if err := wsutil.WriteClientText(conn, []byte(`{"event":"authenticate","data":{"token":"valid-bench"}}`)); err != nil {
					failed.Store(err.Error())
					return
				}
				conns[i] = conn
				if mode == "drain" {
					go func() {
						buf := make([]byte, 32<<10)
						for {
							m, err := conn.Read(buf)
							read.Add(int64(m))
							if err != nil {
								return
							}
						}
					}()
				}
			}
		}()
	}
	wg.Wait()
	if f := failed.Load(); f != nil {
		fmt.Println("failed", f)
		return 1
	}
	fmt.Println("ready")
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		fmt.Println(read.Load())
	}
	for _, c := range conns {
		_ = c.Close()
	}
	return 0
}

// child is a running client process.
type child struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Scanner
}

// startChild runs this test binary as a client holding n connections.
func startChild(tb testing.TB, mode, url string, n int) *child {
	tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+mode, childURLEnv+"="+url, childConnsEnv+"="+strconv.Itoa(n))
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	ch := &child{cmd: cmd, in: in, out: bufio.NewScanner(out)}
	if !ch.out.Scan() || ch.out.Text() != "ready" {
		_ = in.Close()
		_ = cmd.Wait()
		tb.Fatalf("client process: %q %v", ch.out.Text(), ch.out.Err())
	}
	return ch
}

// bytesRead asks the child how many bytes its connections have read.
func (ch *child) bytesRead(tb testing.TB) int64 {
	if _, err := io.WriteString(ch.in, "?\n"); err != nil {
		tb.Fatal(err)
	}
	if !ch.out.Scan() {
		tb.Fatalf("client process gone: %v", ch.out.Err())
	}
	v, err := strconv.ParseInt(strings.TrimSpace(ch.out.Text()), 10, 64)
	if err != nil {
		tb.Fatal(err)
	}
	return v
}

// stop ends the child; its connections close with it.
func (ch *child) stop() {
	_ = ch.in.Close()
	_ = ch.cmd.Wait()
}

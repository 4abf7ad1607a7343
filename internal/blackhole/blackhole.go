// Package blackhole is a TCP server for tests that accepts connections and
// never answers, as a server behind a partition does.
package blackhole

import (
	"net"
	"sync"
	"testing"
)

// Server accepts connections and never answers: a client connects, and
// every command waits for a reply that does not come, as with a Redis
// behind a partition. It stops when the test ends.
type Server struct {
	ln       net.Listener
	accepted chan struct{}
	once     sync.Once

	mu    sync.Mutex
	conns []net.Conn
}

// New listens on a random local port.
func New(tb testing.TB) *Server {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("blackhole: listen: %v", err)
	}
	s := &Server{ln: ln, accepted: make(chan struct{})}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
			s.once.Do(func() { close(s.accepted) })
		}
	}()
	tb.Cleanup(func() {
		ln.Close()
		<-done
		s.mu.Lock()
		for _, c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
	})
	return s
}

// Addr is where clients connect.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Accepted is closed once the first connection has been accepted.
func (s *Server) Accepted() <-chan struct{} { return s.accepted }

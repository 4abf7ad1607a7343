package redisbroker

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// handoverPair is a predecessor's and a successor's connection at the
// point where the marker has been published (no Redis: the read loops'
// part alone).
func handoverPair(t *testing.T, pingTimeout time.Duration) (old, n *conn, oh, nh *handover) {
	rc := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}) // never dialled
	t.Cleanup(func() { _ = rc.Close() })
	b := New(rc, Options{PingTimeout: pingTimeout})
	old, n = &conn{s: b.newSession()}, &conn{s: b.newSession()}
	oh = &handover{channel: old.s.probeCh, marker: "m", reached: make(chan struct{})}
	nh = &handover{channel: old.s.probeCh, marker: "m", reached: make(chan struct{}), pred: oh, predSess: old.s, passed: make(chan struct{})}
	n.mute.Store(true)
	old.ho.Store(oh)
	n.ho.Store(nh)
	return old, n, oh, nh
}

// The successor delivers nothing until the predecessor has read the
// marker, whichever reads it first; the predecessor nothing after it.
func TestSuccessorWaitsForThePredecessorAtTheMarker(t *testing.T) {
	old, n, oh, nh := handoverPair(t, 10*time.Second)
	done := make(chan struct{})
	go func() {
		n.passMarker(nh) // the successor reads the marker first
		close(done)
	}()
	<-nh.reached
	select {
	case <-nh.passed:
		t.Fatal("the successor took over before the predecessor read the marker")
	case <-time.After(20 * time.Millisecond):
	}
	if !n.mute.Load() {
		t.Fatal("the successor delivers before the predecessor read the marker")
	}
	old.passMarker(oh)
	if !old.mute.Load() {
		t.Fatal("the predecessor still delivers after the marker")
	}
	<-done
	select {
	case <-nh.passed:
	default:
		t.Fatal("the successor did not take over")
	}
	if n.mute.Load() || n.ho.Load() != nil || old.ho.Load() != nil {
		t.Fatal("the renewal's state was left behind")
	}
}

// A predecessor that never reads the marker costs the successor its
// session (and the renewal fails) rather than leaving it mute.
func TestSuccessorGivesUpOnASilentPredecessor(t *testing.T) {
	_, n, _, nh := handoverPair(t, 50*time.Millisecond)
	n.passMarker(nh)
	if err := n.s.cause(); err == nil || !strings.Contains(err.Error(), "did not read the marker") {
		t.Fatalf("successor's session: %v, want failed for want of the predecessor", err)
	}
	old, n, _, nh := handoverPair(t, 10*time.Second)
	old.s.fail(errors.New("gone"))
	n.passMarker(nh)
	if err := n.s.cause(); err == nil || !strings.Contains(err.Error(), "lost before the marker") {
		t.Fatalf("successor's session: %v, want failed with its predecessor", err)
	}
}

// A renewal request that finds the channels above a quarter of the
// session's peak, as one left over from before a reconnect does, is
// dropped before any I/O.
func TestStaleRenewalRequestIsDropped(t *testing.T) {
	rc := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}) // never dialled
	defer rc.Close()
	b := New(rc, Options{})
	s := b.newSession()
	b.sess = s
	for i := range 100 {
		b.want["ws:room:"+strings.Repeat("x", i)] = struct{}{}
	}
	b.renewMin, b.heldPeak = 64, 100 // a fresh session holding its peak
	if err := b.handOver(t.Context(), s); err != nil {
		t.Fatal(err)
	}
	if b.sess != s || b.stats.sessions.Load() != 0 {
		t.Fatal("a session at its peak was renewed")
	}
}

package failfast

import (
	"errors"
	"testing"
	"time"
)

func TestGate(t *testing.T) {
	g := New()
	if probe, cause := g.Admit(); probe || cause != nil || g.IsShut() {
		t.Fatalf("open gate: probe %v, cause %v", probe, cause)
	}
	down := errors.New("connection refused")
	if !g.Shut(down) || g.Shut(down) {
		t.Fatal("Shut did not report the gate open the first time only")
	}
	// The first send after shutting is the probe; the rest fail at once
	// until it is over and ProbeEvery has passed.
	if probe, cause := g.Admit(); !probe || cause != nil {
		t.Fatalf("first send: probe %v, cause %v; want the probe", probe, cause)
	}
	if _, cause := g.Admit(); cause != down {
		t.Fatalf("while the probe is under way: %v, want %v", cause, down)
	}
	g.Probed()
	if _, cause := g.Admit(); cause != down {
		t.Fatalf("right after the probe: %v, want %v", cause, down)
	}
	g.probeAt.Add(-int64(ProbeEvery)) // as if ProbeEvery had passed
	if probe, _ := g.Admit(); !probe {
		t.Fatal("no probe ProbeEvery after the last")
	}
	if !g.ShutWithin(time.Minute) {
		t.Fatal("ShutWithin false right after Shut")
	}
	g.shutAt.Add(-int64(2 * time.Second))
	if g.ShutWithin(time.Second) {
		t.Fatal("ShutWithin true for a gate shut 2 s ago")
	}
	if !g.Open() || g.Open() || g.IsShut() {
		t.Fatal("Open did not report the gate shut the first time only")
	}
}

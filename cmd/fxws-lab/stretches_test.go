package main

import (
	"reflect"
	"strings"
	"testing"
)

// The shape of `go tool trace -d=parsed`: one event per "M=" line, the
// stacks of the event indented below it.
const parsedTrace = `M=1 P=0 G=-1 StateTransition Time=1000 GoID=5 Runnable->Running Reason=""
M=1 P=0 G=5 StateTransition Time=801000 GoID=5 Running->Runnable Reason="runtime.Gosched"
TransitionStack=
	runtime.Gosched @ 0x1
		/x.go:1
M=1 P=0 G=-1 StateTransition Time=900000 GoID=7 Runnable->Running Reason=""
M=1 P=0 G=7 Label Time=900001 Label="GC (fractional)" Resource=Goroutine(7)
M=1 P=0 G=7 StateTransition Time=3000000 GoID=7 Running->Waiting Reason="system goroutine wait"
M=1 P=0 G=-1 StateTransition Time=3000000 GoID=9 Runnable->Running Reason=""
M=1 P=0 G=9 StateTransition Time=5000000 GoID=9 Running->Waiting Reason="sync"
Stack=
	runtime.traceAdvance @ 0x1
		/trace.go:1
M=1 P=0 G=-1 StateTransition Time=5000000 GoID=5 Runnable->Running Reason=""
M=1 P=0 G=5 StateTransition Time=5100000 GoID=5 Running->Syscall Reason=""
M=1 P=0 G=5 StateTransition Time=5400000 GoID=5 Syscall->Running Reason=""
M=1 P=0 G=5 StateTransition Time=5600000 GoID=5 Running->NotExist Reason=""
`

// A stretch runs from Running to giving the processor up, syscalls
// included; the GC's workers and the trace's own goroutines do not count.
func TestParseStretches(t *testing.T) {
	got := parseStretches(strings.NewReader(parsedTrace)).summary()
	want := map[string]any{
		"stretches": 2, "at_least_250us": 2, "at_least_500us": 2, "at_least_1000us": 0, "at_least_2000us": 0,
		"longest_ms": []float64{0.8, 0.6},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v\nwant %v", got, want)
	}
}

package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Stretches: how long the server's goroutines run before they give the
// processor up. On one core, a healthy client's message waits at least as
// long as the stretch in progress when it arrives, so the count of long
// stretches is a figure of the server's own making; the p99 of a single
// run also carries the machine's noise (a clean baseline here varied from
// 0.4 to 2.7 ms between runs of the same tree).
//
// The lab takes an execution trace from the demo's debug listener
// (/debug/pprof/trace) and reads it with `go tool trace -d=parsed`: a
// stretch is a goroutine's time from Running to Runnable, Waiting or its
// end, syscalls included (on one processor nothing else runs meanwhile).
// The runtime's GC workers and the goroutines serving the trace itself are
// left out: they are the runtime's, not the server's.

// stretchThresholds are the lengths counted, in microseconds.
var stretchThresholds = []int64{250, 500, 1000, 2000}

// traceStretches takes a trace of the demo for d and summarises its
// goroutines' run stretches.
func traceStretches(ctx context.Context, s *server, d time.Duration, dir string) (map[string]any, error) {
	f, err := os.CreateTemp(dir, "trace-*.out")
	if err != nil {
		return nil, err
	}
	defer os.Remove(f.Name())
	url := fmt.Sprintf("http://%s/debug/pprof/trace?seconds=%d", s.debugAddr, int(d.Seconds()))
	r, err := http.Get(url)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("trace: %w", err)
	}
	_, err = io.Copy(f, r.Body)
	r.Body.Close()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("trace: %w", err)
	}
	if r.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("trace: %s", r.Status)
	}
	cmd := exec.CommandContext(ctx, "go", "tool", "trace", "-d=parsed", f.Name())
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("go tool trace: %w", err)
	}
	st := parseStretches(out)
	if err := cmd.Wait(); err != nil {
		return nil, fmt.Errorf("go tool trace: %w", err)
	}
	return st.summary(), nil
}

var (
	transitionRE = regexp.MustCompile(`StateTransition Time=(\d+) GoID=(\d+) (\w+)->(\w+)`)
	goroutineRE  = regexp.MustCompile(`^M=\S+ P=\S+ G=(-?\d+) `)
)

type stretchStats struct {
	durations []int64 // nanoseconds
}

// notServer marks stacks of goroutines that are not the server's: the GC's
// workers and what serves or writes the trace.
var notServer = []string{"gcBgMarkWorker", "runtime.traceAdvance", "runtime/trace.", "net/http/pprof.", "net/http."}

func parseStretches(r io.Reader) *stretchStats {
	st := &stretchStats{}
	running := map[string]int64{} // goroutine → start of its stretch
	gcWorkers := map[string]bool{}
	type ended struct {
		g   string
		dur int64
	}
	var pending *ended
	excluded := false
	flush := func() {
		if pending != nil && !excluded && !gcWorkers[pending.g] {
			st.durations = append(st.durations, pending.dur)
		}
		pending, excluded = nil, false
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "M=") {
			// A stack of the event above: whose stretch just ended.
			if pending != nil && !excluded {
				for _, s := range notServer {
					if strings.Contains(line, s) {
						excluded = true
						break
					}
				}
			}
			continue
		}
		flush()
		if strings.Contains(line, `Label="GC`) {
			if m := goroutineRE.FindStringSubmatch(line); m != nil {
				gcWorkers[m[1]] = true
			}
		}
		m := transitionRE.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		t, _ := strconv.ParseInt(m[1], 10, 64)
		g, from, to := m[2], m[3], m[4]
		switch {
		case to == "Running" && (from == "Runnable" || from == "Undetermined"):
			running[g] = t
		case (from == "Running" || from == "Syscall") && (to == "Runnable" || to == "Waiting" || to == "NotExist"):
			if t0, ok := running[g]; ok {
				delete(running, g)
				pending = &ended{g: g, dur: t - t0}
			}
		}
	}
	flush()
	return st
}

func (st *stretchStats) summary() map[string]any {
	slices.Sort(st.durations)
	out := map[string]any{"stretches": len(st.durations)}
	for _, th := range stretchThresholds {
		n := 0
		for _, d := range st.durations {
			if d >= th*1000 {
				n++
			}
		}
		out[fmt.Sprintf("at_least_%dus", th)] = n
	}
	var top []float64
	for i := len(st.durations) - 1; i >= 0 && len(top) < 5; i-- {
		top = append(top, round2(float64(st.durations[i])/1e6))
	}
	out["longest_ms"] = top
	return out
}

package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
)

// figure is one reported quantity of a scenario.
type figure struct {
	name   string
	better string // "lower" or "higher"
	get    func(r *result) (float64, bool)
}

func pos(v float64) (float64, bool) { return v, v > 0 }

var (
	figCPUMsg = figure{"server CPU per delivered message, µs", "lower", func(r *result) (float64, bool) { return pos(r.CPUPerMsgUs) }}
	figP50    = figure{"latency p50, ms", "lower", func(r *result) (float64, bool) { return pos(r.LatP50) }}
	figP99    = figure{"latency p99, ms", "lower", func(r *result) (float64, bool) { return pos(r.LatP99) }}
	figRate   = figure{"delivered messages/s", "higher", func(r *result) (float64, bool) { return pos(r.DeliveredPerS) }}
)

// figuresOf lists what the table shows for a scenario.
func figuresOf(scenario string) []figure {
	switch scenario {
	case "conns":
		return []figure{
			{"server RSS per idle authenticated connection, KB", "lower", func(r *result) (float64, bool) {
				return r.RSSPerConn / 1024, r.RSSAfter > 0
			}},
			{"server RSS per added connection (second half), KB", "lower", func(r *result) (float64, bool) {
				return r.RSSMarginal / 1024, r.MarginalConns > 0
			}},
			{"server CPU per connect + authenticate, µs", "lower", func(r *result) (float64, bool) { return pos(r.CPUPerConnUs) }},
			{"connects/s (one load process)", "higher", func(r *result) (float64, bool) { return pos(r.ConnectPerSec) }},
		}
	case "echo":
		return []figure{
			{"round trips/s", "higher", func(r *result) (float64, bool) { return pos(r.RoundTripsPerS) }},
			{"server CPU per round trip, µs", "lower", func(r *result) (float64, bool) { return pos(r.CPUPerMsgUs) }},
			{"round trip p50, ms", "lower", func(r *result) (float64, bool) { return pos(r.LatP50) }},
			{"round trip p99, ms", "lower", func(r *result) (float64, bool) { return pos(r.LatP99) }},
		}
	case "cross":
		return []figure{figCPUMsg, figP50, figP99,
			{"latency p99 on the other instance, ms", "lower", func(r *result) (float64, bool) {
				if len(r.PerInstance) < 2 {
					return 0, false
				}
				return pos(r.PerInstance[len(r.PerInstance)-1].LatP99)
			}},
			figRate,
		}
	default:
		return []figure{figCPUMsg, figP50, figP99, figRate}
	}
}

// trouble sums what should be zero in a healthy run.
func trouble(r *result) string {
	var parts []string
	add := func(n int64, what string) {
		if n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, what))
		}
	}
	add(int64(r.ConnectFailed), "connect failures")
	add(r.Dropped, "dropped connections")
	add(r.Missing, "missing")
	add(r.Duplicates, "duplicates")
	add(r.PublishErrors, "publish errors")
	add(r.DecryptErrors, "decrypt errors")
	return strings.Join(parts, ", ")
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func fmtNum(v float64) string {
	switch {
	case v >= 1000:
		return fmt.Sprintf("%.0f", v)
	case v >= 100:
		return fmt.Sprintf("%.1f", v)
	case v >= 1:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.3f", v)
	}
}

// cell renders the median with the range and the number of runs.
func cell(v []float64) string {
	if len(v) == 0 {
		return "—"
	}
	if len(v) == 1 {
		return fmtNum(v[0]) + " (1 run)"
	}
	return fmt.Sprintf("%s (%s–%s, n=%d)", fmtNum(median(v)), fmtNum(slices.Min(v)), fmtNum(slices.Max(v)), len(v))
}

// paired lists the ratio of each repetition that both implementations
// ran, in repetition order: the spread of a median ratio, and whether the
// runs fall on both sides of a threshold.
func paired(a, b map[int]float64) string {
	var reps []int
	for rep := range a {
		if _, ok := b[rep]; ok && a[rep] != 0 {
			reps = append(reps, rep)
		}
	}
	if len(reps) == 0 {
		return "—"
	}
	slices.Sort(reps)
	parts := make([]string, len(reps))
	for i, rep := range reps {
		parts[i] = fmt.Sprintf("%.2f", b[rep]/a[rep])
	}
	return strings.Join(parts, ", ")
}

// runReport reads result lines and writes the comparison table in Markdown.
func runReport(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("fxws-bench report", flag.ContinueOnError)
	base := fs.String("a", "original", "label of the baseline implementation")
	ours := fs.String("b", "ours", "label of the implementation compared to it")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return errors.New("fxws-bench report: name a results file (JSON lines)")
	}
	var results []*result
	for _, name := range fs.Args() {
		f, err := os.Open(name)
		if err != nil {
			return fmt.Errorf("fxws-bench report: %w", err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<24)
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if !strings.HasPrefix(line, "{") {
				continue
			}
			r := new(result)
			if err := json.Unmarshal([]byte(line), r); err != nil {
				f.Close()
				return fmt.Errorf("fxws-bench report: %s: %w", name, err)
			}
			results = append(results, r)
		}
		f.Close()
		if err := sc.Err(); err != nil {
			return fmt.Errorf("fxws-bench report: %s: %w", name, err)
		}
	}
	return writeReport(out, results, *base, *ours)
}

func writeReport(out io.Writer, results []*result, base, ours string) error {
	var cases []string
	byCase := map[string][]*result{}
	for _, r := range results {
		c := r.Case
		if c == "" {
			c = r.Scenario
		}
		if _, ok := byCase[c]; !ok {
			cases = append(cases, c)
		}
		byCase[c] = append(byCase[c], r)
	}
	if len(cases) == 0 {
		return errors.New("fxws-bench report: no results")
	}
	fmt.Fprintf(out, "| case | figure | %s | %s | %s / %s | run by run |\n|---|---|---|---|---|---|\n", base, ours, ours, base)
	// Irregularities, one line per (case, implementation, text) with the
	// runs it happened in.
	type key struct{ c, label, text string }
	var order []key
	runs := map[key][]string{}
	note := func(c string, r *result, text string) {
		k := key{c, r.Label, text}
		if _, ok := runs[k]; !ok {
			order = append(order, k)
		}
		runs[k] = append(runs[k], fmt.Sprint(r.Rep))
	}
	for _, c := range cases {
		rs := byCase[c]
		for _, fig := range figuresOf(rs[0].Scenario) {
			vals := map[string][]float64{}
			byRep := map[string]map[int]float64{}
			for _, r := range rs {
				if v, ok := fig.get(r); ok {
					vals[r.Label] = append(vals[r.Label], v)
					if byRep[r.Label] == nil {
						byRep[r.Label] = map[int]float64{}
					}
					byRep[r.Label][r.Rep] = v
				}
			}
			ratio := "—"
			if a, b := vals[base], vals[ours]; len(a) > 0 && len(b) > 0 && median(a) != 0 {
				ratio = fmt.Sprintf("%.2f", median(b)/median(a))
				if fig.better == "higher" {
					ratio += " (higher is better)"
				}
			}
			fmt.Fprintf(out, "| %s | %s | %s | %s | %s | %s |\n", c, fig.name, cell(vals[base]), cell(vals[ours]), ratio, paired(byRep[base], byRep[ours]))
		}
		for _, r := range rs {
			if t := trouble(r); t != "" {
				note(c, r, t)
			}
			for _, n := range r.Notes {
				note(c, r, n)
			}
		}
	}
	if len(order) > 0 {
		fmt.Fprintf(out, "\nIrregularities in individual runs:\n\n")
		for _, k := range order {
			word := "run"
			if len(runs[k]) > 1 {
				word = "runs"
			}
			fmt.Fprintf(out, "- %s, %s, %s %s: %s\n", k.c, k.label, word, strings.Join(runs[k], ", "), k.text)
		}
	}
	return nil
}

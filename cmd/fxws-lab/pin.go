package main

import (
	"fmt"
	"runtime"
	"strconv"
	"strings"
)

// parseCPUList reads a taskset-style list ("0", "0,2", "1-3").
func parseCPUList(s string) (map[int]bool, error) {
	set := map[int]bool{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			return nil, fmt.Errorf("lab: cpu list %q: %w", s, err)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil {
				return nil, fmt.Errorf("lab: cpu list %q: %w", s, err)
			}
		}
		for i := a; i <= b; i++ {
			set[i] = true
		}
	}
	return set, nil
}

// otherCPUs is the taskset list of the cores not in serverCPUs, or "" when
// no core would be left (then nothing is pinned).
func otherCPUs(serverCPUs string) string {
	if serverCPUs == "" {
		return ""
	}
	used, err := parseCPUList(serverCPUs)
	if err != nil {
		return ""
	}
	var rest []string
	for i := 0; i < runtime.NumCPU(); i++ {
		if !used[i] {
			rest = append(rest, strconv.Itoa(i))
		}
	}
	return strings.Join(rest, ",")
}

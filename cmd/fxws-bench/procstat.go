package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of utime/stime in /proc/<pid>/stat. It is
// 100 on every Linux architecture Go supports.
const clockTicks = 100

// procCPU returns the user+system CPU time a process has used so far, all
// threads included (also threads that have exited).
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("fxws-bench: read cpu of pid %d: %w", pid, err)
	}
	// The command name (field 2) may contain spaces; fields after it are
	// counted from the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("fxws-bench: malformed /proc/%d/stat", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("fxws-bench: short /proc/%d/stat", pid)
	}
	// After ')' field 0 is state (overall field 3): utime is 14, stime 15.
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("fxws-bench: parse /proc/%d/stat", pid)
	}
	return time.Duration(ut+st) * time.Second / clockTicks, nil
}

// procRSS returns the resident set size of a process in bytes.
func procRSS(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("fxws-bench: read rss of pid %d: %w", pid, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("fxws-bench: parse VmRSS of pid %d: %w", pid, err)
			}
			return kb * 1024, nil
		}
	}
	return 0, fmt.Errorf("fxws-bench: no VmRSS for pid %d", pid)
}

// pidSet is a group of processes measured together (several server
// instances, or the load processes).
type pidSet []int

func parsePids(s string) (pidSet, error) {
	var ps pidSet
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' }) {
		p, err := strconv.Atoi(f)
		if err != nil || p <= 0 {
			return nil, fmt.Errorf("fxws-bench: bad pid %q", f)
		}
		ps = append(ps, p)
	}
	return ps, nil
}

// cpu sums the CPU time of every process; 0 and no error for an empty set.
func (ps pidSet) cpu() (time.Duration, error) {
	var t time.Duration
	for _, p := range ps {
		c, err := procCPU(p)
		if err != nil {
			return 0, err
		}
		t += c
	}
	return t, nil
}

// rss sums the resident memory of every process.
func (ps pidSet) rss() (int64, error) {
	var t int64
	for _, p := range ps {
		r, err := procRSS(p)
		if err != nil {
			return 0, err
		}
		t += r
	}
	return t, nil
}

package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"

	"golang.org/x/sys/unix"
)

// pinSelf keeps the lab's own threads off the server's cores, so that the
// instrument does not compete with what it measures.
func pinSelf(cpus string) error {
	if cpus == "" {
		return nil
	}
	set, err := parseCPUList(cpus)
	if err != nil {
		return err
	}
	var mask unix.CPUSet
	for c := range set {
		mask.Set(c)
	}
	// pid 0 is the calling thread only; every thread of the process must move.
	tids, err := threadIDs()
	if err != nil {
		return err
	}
	for _, tid := range tids {
		if err := unix.SchedSetaffinity(tid, &mask); err != nil {
			return fmt.Errorf("lab: pin thread %d to %s: %w", tid, cpus, err)
		}
	}
	// Go sized its processors from the affinity at start; more of them than
	// cores would make the lab's own threads take turns on a core.
	runtime.GOMAXPROCS(len(set))
	return nil
}

func threadIDs() ([]int, error) {
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return nil, fmt.Errorf("lab: list threads: %w", err)
	}
	var ids []int
	for _, e := range ents {
		if id, err := strconv.Atoi(e.Name()); err == nil {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

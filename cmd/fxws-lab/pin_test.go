package main

import (
	"runtime"
	"testing"
)

func TestParseCPUList(t *testing.T) {
	got, err := parseCPUList("0, 2-4,7")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []int{0, 2, 3, 4, 7} {
		if !got[c] {
			t.Fatalf("cpu %d missing from %v", c, got)
		}
	}
	if len(got) != 5 {
		t.Fatalf("got %v, want 5 cpus", got)
	}
	if _, err := parseCPUList("a-b"); err == nil {
		t.Fatal("junk accepted")
	}
}

func TestOtherCPUs(t *testing.T) {
	if otherCPUs("") != "" {
		t.Fatal("no server pinning must pin nothing")
	}
	all := ""
	for i := 0; i < runtime.NumCPU(); i++ {
		if i > 0 {
			all += ","
		}
		all += string(rune('0' + i%10))
	}
	if runtime.NumCPU() <= 10 && otherCPUs(all) != "" {
		t.Fatalf("otherCPUs(every core) = %q, want none", otherCPUs(all))
	}
	if runtime.NumCPU() >= 2 && otherCPUs("0") == "" {
		t.Fatal("otherCPUs(0) left nothing on a multi-core machine")
	}
}

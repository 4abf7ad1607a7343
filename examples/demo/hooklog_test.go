package main

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
)

// The packed log renders every entry exactly as marshal renders it, and
// keeps only the last cap entries, oldest first.
func TestHookLogRendersWhatWasRecorded(t *testing.T) {
	entries := []hookEntry{
		{Hook: "connected", ClientID: "0b9f3c1e-7d52-4c1a-9f3e-2a6b8c4d5e6f", UserID: "alice", Metadata: json.RawMessage(`{"role":"tester","n":[1,2]}`)},
		{Hook: "connected", ClientID: "0b9f3c1e-7d52-4c1a-9f3e-2a6b8c4d5e70"},
		{Hook: "message", ClientID: "0B9F3C1E-7D52-4C1A-9F3E-2A6B8C4D5E6F", UserID: "bob", Event: "chat <&> \u2028 \"q\" é"},
		{Hook: "message", ClientID: "not-a-uuid", UserID: strings.Repeat("u", 300), Event: ""},
		{Hook: "disconnected", ClientID: "{0b9f3c1e-7d52-4c1a-9f3e-2a6b8c4d5e6f}", UserID: "alice"},
		{Hook: "someday", ClientID: "", UserID: ""},
	}
	l := newHookLog(4)
	for _, e := range entries {
		l.add(e)
	}
	var got []json.RawMessage
	if err := json.Unmarshal(l.JSON(), &got); err != nil {
		t.Fatalf("not a JSON array: %v: %s", err, l.JSON())
	}
	want := entries[len(entries)-4:]
	if len(got) != len(want) {
		t.Fatalf("%d entries, want the last %d", len(got), len(want))
	}
	for i, e := range want {
		b, err := marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		if string(got[i]) != string(b) {
			t.Errorf("entry %d:\n got %s\nwant %s", i, got[i], b)
		}
	}
	// Before it is full, and empty.
	if s := string(newHookLog(3).JSON()); s != "[]" {
		t.Fatalf("empty log renders %s", s)
	}
	l = newHookLog(10)
	l.add(entries[0])
	b, _ := marshal(entries[0])
	if s := string(l.JSON()); s != "["+string(b)+"]" {
		t.Fatalf("one entry renders %s", s)
	}
}

func BenchmarkHookLogAdd(b *testing.B) {
	l := newHookLog(maxHooks)
	e := hookEntry{Hook: "message", ClientID: "0b9f3c1e-7d52-4c1a-9f3e-2a6b8c4d5e6f", UserID: "c123", Event: "join"}
	b.ReportAllocs()
	for b.Loop() {
		l.add(e)
	}
}

func TestCanonicalUUID(t *testing.T) {
	for _, s := range []string{"0b9f3c1e-7d52-4c1a-9f3e-2a6b8c4d5e6f", "00000000-0000-0000-0000-000000000000", "ffffffff-ffff-ffff-ffff-ffffffffffff"} {
		u, ok := canonicalUUID(s)
		if !ok || u.String() != s {
			t.Errorf("%s: ok %v, renders %s", s, ok, u.String())
		}
	}
	for _, s := range []string{"", "0B9F3C1E-7D52-4C1A-9F3E-2A6B8C4D5E6F", "0b9f3c1e7d524c1a9f3e2a6b8c4d5e6f", "0b9f3c1e-7d52-4c1a-9f3e-2a6b8c4d5e6g", "0b9f3c1e-7d52-4c1a-9f3e_2a6b8c4d5e6f", "0b9f3c1e-7d52-4c1a-9f3e-2a6b8c4d5e6f0"} {
		if _, ok := canonicalUUID(s); ok {
			t.Errorf("%q accepted", s)
		}
	}
}

// The log keeps the most recent maxHooks (10 000, demo-contract.md) calls,
// oldest first.
func TestHookLogKeepsTheContractsLast10000(t *testing.T) {
	if maxHooks != 10000 {
		t.Fatalf("maxHooks = %d, the contract says 10 000", maxHooks)
	}
	l := newHookLog(maxHooks)
	for i := range maxHooks + 5 {
		l.add(hookEntry{Hook: "message", ClientID: "c", Event: strconv.Itoa(i)})
	}
	var got []struct {
		Event string `json:"event"`
	}
	if err := json.Unmarshal(l.JSON(), &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != maxHooks || got[0].Event != "5" || got[len(got)-1].Event != strconv.Itoa(maxHooks+4) {
		t.Fatalf("%d entries from %q to %q, want %d from \"5\" to %q", len(got), got[0].Event, got[len(got)-1].Event, maxHooks, strconv.Itoa(maxHooks+4))
	}
}

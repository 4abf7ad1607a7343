package helper

import (
	"slices"
	"testing"
	"time"
)

func TestReleaserDecides(t *testing.T) {
	const step = time.Second
	r := &releaser{after: 3 * time.Second}
	look := func(clients int, total uint64) bool { return r.observe(clients, total, step) }

	// A crowd arrives and stays: never.
	for i := 0; i < 10; i++ {
		if look(1000, 1000) {
			t.Fatalf("released with the crowd still there (look %d)", i)
		}
	}
	// It leaves; the count settles at 10 but releases wait for quiet.
	if look(400, 1000) || look(10, 1000) {
		t.Fatal("released while clients were still leaving")
	}
	if look(10, 1000) || look(10, 1000) {
		t.Fatal("released before ReleaseMemoryAfter of quiet")
	}
	if !look(10, 1000) {
		t.Fatal("no release after 3 s of quiet at 10 of a 1000 peak")
	}
	// Once per drop.
	for i := 0; i < 10; i++ {
		if look(10, 1000) {
			t.Fatal("released twice for one drop")
		}
	}
	// New connections reset the quiet time, and a new peak is needed.
	if look(10, 1010) {
		t.Fatal("released on a connection")
	}
	for i := 0; i < 5; i++ {
		if look(0, 1010) {
			t.Fatal("released for a drop of 10")
		}
	}
}

func TestReleaserNeedsHalving(t *testing.T) {
	r := &releaser{after: time.Second}
	r.observe(2000, 2000, time.Second)
	r.observe(1200, 2000, time.Second) // 800 fewer, but more than half remain
	for i := 0; i < 5; i++ {
		if r.observe(1200, 2000, time.Second) {
			t.Fatal("released with more than half of the peak connected")
		}
	}
}

func TestRegistryCompactKeepsEverything(t *testing.T) {
	r := newRegistry(nil)
	var keep []*client
	for i := 0; i < 100; i++ {
		c := &client{id: string(rune('a'+i%26)) + string(rune('0'+i/26))}
		r.clients[c.id] = c
		if i%10 == 0 {
			keep = append(keep, c)
		}
	}
	for id, c := range r.clients {
		if !slices.Contains(keep, c) {
			delete(r.clients, id)
		}
	}
	r.rooms["room"] = map[*client]struct{}{keep[0]: {}, keep[1]: {}}
	r.users["u"] = []*client{keep[2]}
	r.compact()
	if len(r.clients) != len(keep) {
		t.Fatalf("%d clients after compact, want %d", len(r.clients), len(keep))
	}
	for _, c := range keep {
		if r.clients[c.id] != c {
			t.Fatalf("client %s lost", c.id)
		}
	}
	if _, ok := r.rooms["room"][keep[1]]; !ok || len(r.rooms["room"]) != 2 {
		t.Fatalf("room set after compact: %v", r.rooms["room"])
	}
	if len(r.users["u"]) != 1 || r.users["u"][0] != keep[2] {
		t.Fatalf("user index after compact: %v", r.users["u"])
	}
}

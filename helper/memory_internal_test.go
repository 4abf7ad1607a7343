package helper

import (
	"slices"
	"testing"
	"time"
)

func TestReleaserDecides(t *testing.T) {
	const step = time.Second
	r := &releaser{after: 3 * time.Second}
	look := func(clients int, total uint64) bool { return r.observe(clients, total, 0, step) }
	settle := func(clients int, total uint64) int {
		n := 0
		for i := 0; i < 10; i++ {
			if look(clients, total) {
				n++
			}
		}
		return n
	}

	// A crowd arrives: one release once it has settled, not before.
	if look(400, 400) || look(1000, 1000) || look(1000, 1000) || look(1000, 1000) {
		t.Fatal("released before ReleaseMemoryAfter of quiet")
	}
	if !look(1000, 1000) {
		t.Fatal("no release after 3 s of quiet with 1000 new clients")
	}
	if n := settle(1000, 1000); n != 0 {
		t.Fatalf("%d more releases for the same crowd", n)
	}
	// A few more: not worth it (neither 256 nor a quarter).
	if n := settle(1200, 1200); n != 0 {
		t.Fatalf("%d releases for 200 more clients", n)
	}
	// It leaves; releases wait for quiet.
	if look(400, 1200) || look(10, 1200) || look(10, 1200) || look(10, 1200) {
		t.Fatal("released while clients were still leaving or before the quiet time")
	}
	if !look(10, 1200) {
		t.Fatal("no release after 3 s of quiet at 10 of a 1200 peak")
	}
	if n := settle(10, 1200); n != 0 {
		t.Fatalf("released %d more times for one drop", n)
	}
	// Churn without a change in the count keeps it from settling.
	for i := uint64(1); i < 20; i++ {
		if look(10, 1200+i) {
			t.Fatal("released during churn")
		}
	}
	// A small drop: nothing.
	if n := settle(0, 1220); n != 0 {
		t.Fatalf("%d releases for a drop of 10", n)
	}
}

func TestReleaserNeedsHalving(t *testing.T) {
	r := &releaser{after: time.Second, mark: 2000}
	r.observe(2000, 2000, 0, time.Second)
	r.observe(1200, 2000, 0, time.Second) // 800 fewer, but more than half remain
	for i := 0; i < 5; i++ {
		if r.observe(1200, 2000, 0, time.Second) {
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

// Deliveries above releaseBusyRate keep a settled crowd from a release
// until they calm down.
func TestReleaserWaitsForQuietTraffic(t *testing.T) {
	r := &releaser{after: 2 * time.Second}
	var delivered uint64
	look := func(perSecond uint64) bool {
		delivered += perSecond
		return r.observe(1000, 1000, delivered, time.Second)
	}
	for i := 0; i < 10; i++ {
		if look(50_000) {
			t.Fatal("released during a broadcast")
		}
	}
	if look(10) {
		t.Fatal("released before the quiet time")
	}
	if !look(10) {
		t.Fatal("no release once traffic calmed down")
	}
}

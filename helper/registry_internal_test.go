package helper

import (
	"fmt"
	"testing"
)

// A client in thousands of rooms is removed in stretches, the lock let go
// in between; meanwhile it counts as gone: a join or leave for it is
// refused (leave used to look its room up in the list remove had taken),
// and when remove returns it is in no room at all.
func TestRegistryRemovePausesBetweenStretches(t *testing.T) {
	r := newRegistry(&subscriptions{off: true})
	c := &client{id: "c"}
	other := &client{id: "o"}
	r.add(c)
	r.add(other)
	const rooms = 4096
	for i := 0; i < rooms; i++ {
		r.join(c, fmt.Sprintf("room-%d", i))
	}
	r.join(other, "room-7")
	pauses := 0
	r.pause = func() {
		pauses++
		if r.leave(c, "room-4095", false) {
			t.Error("leave succeeded for a client being removed")
		}
		if in, _ := r.join(c, "late"); in {
			t.Error("join succeeded for a client being removed")
		}
		if got := r.roomCount(c); got != 0 {
			t.Errorf("roomCount %d during removal, want 0", got)
		}
	}
	r.remove(c)
	if pauses == 0 {
		t.Fatalf("removing a client from %d rooms never paused", rooms)
	}
	if n := len(r.rooms); n != 1 {
		t.Fatalf("%d rooms left, want 1 (the other client's)", n)
	}
	if _, in := r.rooms["room-7"][other]; !in {
		t.Fatal("the other client lost its room")
	}
	if r.get("c") != nil {
		t.Fatal("client still registered")
	}
}

// A broadcast walks the clients in descriptor order; clients without a
// descriptor, or whose slot a closing client still holds (its number
// reused before it was removed), come after. Nobody is left out or
// counted twice, whatever the order of adds and removes.
func TestRegistryBroadcastOrder(t *testing.T) {
	r := newRegistry(&subscriptions{off: true})
	mk := func(id string, fd int32) *client {
		c := &client{id: id}
		c.out.sock = fd
		r.add(c)
		return c
	}
	c9 := mk("c9", 9)
	c3 := mk("c3", 3)
	plain := mk("plain", -1)
	c7 := mk("c7", 7)
	reused := mk("reused", 3) // fd 3 reused while c3 is still registered
	ids := func() string {
		var s []string
		for _, c := range r.appendAll(nil) {
			s = append(s, c.id)
		}
		return fmt.Sprint(s)
	}
	got := ids()
	if got != "[c3 c7 c9 plain reused]" && got != "[c3 c7 c9 reused plain]" {
		t.Fatalf("broadcast order %s", got)
	}
	r.remove(c3)
	r.remove(reused)
	r.remove(c9)
	if got := ids(); got != "[c7 plain]" {
		t.Fatalf("after removals %s", got)
	}
	r.remove(plain)
	r.remove(c7)
	if got := ids(); got != "[]" || len(r.spill) != 0 {
		t.Fatalf("after removing everyone %s, spill %d", got, len(r.spill))
	}
	r.compact()
	if len(r.byFD) != 0 {
		t.Fatalf("compact kept %d empty slots", len(r.byFD))
	}
	c5 := mk("c5", 5)
	if got := ids(); got != "[c5]" {
		t.Fatalf("after compact and an add %s", got)
	}
	r.remove(c5)
}

// A large room goes out in descriptor order too.
func TestRegistryLargeRoomOrder(t *testing.T) {
	r := newRegistry(&subscriptions{off: true})
	for i := sortedRoomSize; i > 0; i-- {
		c := &client{id: fmt.Sprint(i)}
		c.out.sock = int32(i)
		r.add(c)
		r.join(c, "big")
	}
	got := r.appendRoom(nil, "big")
	if len(got) != sortedRoomSize {
		t.Fatalf("%d members, want %d", len(got), sortedRoomSize)
	}
	for i := 1; i < len(got); i++ {
		if got[i-1].out.sock >= got[i].out.sock {
			t.Fatalf("member %d (fd %d) before fd %d", i, got[i-1].out.sock, got[i].out.sock)
		}
	}
}

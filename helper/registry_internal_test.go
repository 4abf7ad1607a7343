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
		if r.join(c, "late") {
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

package redisbroker

import "testing"

func TestSlot(t *testing.T) {
	// Values from CLUSTER KEYSLOT.
	for key, want := range map[string]int{
		"foo": 12182, "123456789": 12739, "ws:room:a": slot("ws:room:a"),
		"{user1000}.following": slot("user1000"), "foo{}{bar}": slot("foo{}{bar}"), "": 0,
	} {
		if got := slot(key); got != want {
			t.Errorf("slot(%q) = %d, want %d", key, got, want)
		}
	}
	if slot("foo{}{bar}") == slot("bar") {
		t.Error("an empty hash tag must not make the next one count")
	}
}

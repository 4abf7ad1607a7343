package helper

import "testing"

// The looks kept for clients in a standstill go once the app has given
// their messages back, so that a client that then leaves is not kept.
func TestBusyLooksForgetClientsBackFromTheApp(t *testing.T) {
	b := busyLooks{}
	c := &client{}
	c.appSince.Store(100)
	if heard, gone := b.heard(c, 150); heard != 100 || gone || len(b) != 0 {
		// no socket to ask (raw nil): the clocks count from the start
		t.Fatalf("heard %d gone %v looks %d, want 100 false 0", heard, gone, len(b))
	}
	b[c] = &busyLook{since: 100, heard: 100}
	b.prune()
	if len(b) != 1 {
		t.Fatal("a client still in the app was forgotten")
	}
	c.appSince.Store(0)
	c.appDone.Store(200)
	b.prune()
	if len(b) != 0 {
		t.Fatal("a client back from the app is still looked after")
	}
	if heard, gone := b.heard(c, 250); heard != 200 || gone || len(b) != 0 {
		t.Fatalf("heard %d gone %v, want the time the app gave it back", heard, gone)
	}
}

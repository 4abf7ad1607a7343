package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/fxws/websocket/fxtest"
)

// Device is a device's side of the recipe, written in Go on the library's
// protocol client (fxtest.Client); a browser or a phone does the same in
// its own language:
//   - it keeps Last, the number of the last notification it applied, and
//     sends it with `authenticate`, next to its token;
//   - it applies numbers in order: it drops a number it has (one that came
//     live and in a backlog), and holds back one that comes early, asking
//     for a catch-up from Last (the one in between was lost on the way);
//   - each request (authenticate, catch-up) gets one `backlog` as its
//     answer, or the connection is closed: while one is out, a gap is
//     left to it, and asked about again only if the answer leaves one (no
//     timers, no storm of requests after a burst);
//   - on `resync` it asks for a catch-up, whatever is out.
//
// A Device is used from one goroutine.
type Device struct {
	// Token authenticates the device; in this example it is the user id.
	Token string
	// Last is the number of the last notification applied. A real device
	// saves it in the same write as what it applied, and keeps it across
	// restarts.
	Last uint64
	// Dropped counts the notifications that came twice, for a metric.
	Dropped int

	c *fxtest.Client
	// early holds the notifications that came before the ones in between.
	early map[uint64]Notification
	// asked: a request is out, its backlog not yet here.
	asked bool
}

// Update is what one message from the server changed on a device.
type Update struct {
	// Reset is true when Last was moved to From without the notifications
	// in between (the store no longer had them): the app reloads what it
	// shows from its own API before it applies Apply.
	Reset bool
	From  uint64
	// Apply are the notifications now due, in order. Next has moved Last
	// past them: apply them, and save Last with them.
	Apply []Notification
}

// Connect dials url and authenticates with Token and Last, closing the
// connection it had. The backlog that answers comes through Next.
func (d *Device) Connect(ctx context.Context, url string) error {
	d.Close()
	c, err := fxtest.Dial(ctx, url)
	if err != nil {
		return err
	}
	if _, err := c.Authenticate(ctx, Credentials{Token: d.Token, Last: d.Last}); err != nil {
		_ = c.Abort()
		return err
	}
	d.c = c
	// What came early on the old connection is in the new backlog; the
	// authentication is a request whose backlog is on its way.
	d.early, d.asked = map[uint64]Notification{}, true
	return nil
}

// Close closes the connection; Last stays, for the next Connect.
func (d *Device) Close() {
	if d.c != nil {
		_ = d.c.Close()
		d.c = nil
	}
}

// Heartbeat keeps the session: a device that sends nothing for the
// server's HeartbeatTimeout (90 s) is closed.
func (d *Device) Heartbeat() error {
	if d.c == nil {
		return errors.New("device: not connected")
	}
	return d.c.Heartbeat()
}

// Next waits for the server's next message (until ctx ends) and handles
// it. An error is the connection's end or ctx's (then the connection is
// still there: heartbeat, and call Next again).
func (d *Device) Next(ctx context.Context) (Update, error) {
	if d.c == nil {
		return Update{}, errors.New("device: not connected")
	}
	m, err := d.c.ExpectAny(ctx, EventNotification, EventBacklog, EventResync)
	if err != nil {
		return Update{}, err
	}
	switch m.Event {
	case EventNotification:
		var n Notification
		if err := json.Unmarshal(m.Data, &n); err != nil {
			return Update{}, fmt.Errorf("device: notification %s: %w", m.Data, err)
		}
		u := Update{Apply: d.receive(n)}
		if len(d.early) > 0 && !d.asked {
			return u, d.ask()
		}
		return u, nil
	case EventBacklog:
		var b Backlog
		if err := json.Unmarshal(m.Data, &b); err != nil {
			return Update{}, fmt.Errorf("device: backlog %s: %w", m.Data, err)
		}
		return d.backlog(b)
	default: // resync
		// Even with a request out: its read may have come before what this
		// instance missed.
		return Update{}, d.ask()
	}
}

// backlog applies the answer to a request.
func (d *Device) backlog(b Backlog) (Update, error) {
	d.asked = false
	var u Update
	back := false
	// A reset answers the Last it was made for; if Last has moved since,
	// the device is past it and the notifications below are enough.
	if b.Reset && b.Last == d.Last {
		u.Reset, u.From, back = true, b.From, b.From < d.Last
		d.Last = b.From
		for seq := range d.early {
			// Moved back, what is held may be of the old numbering.
			if seq <= d.Last || back {
				delete(d.early, seq)
			}
		}
		u.Apply = d.drain()
	}
	for _, n := range b.Notifications {
		u.Apply = append(u.Apply, d.receive(n)...)
	}
	// Moved back (the store lost its data and numbers from 1 again): live
	// notifications that came before this answer were dropped as ones the
	// device had, when they were new. Asking again brings them.
	if back || len(d.early) > 0 {
		return u, d.ask()
	}
	return u, nil
}

// receive takes one notification and returns those now due.
func (d *Device) receive(n Notification) []Notification {
	if _, held := d.early[n.Seq]; held || n.Seq <= d.Last {
		d.Dropped++
		return nil
	}
	if n.Seq > d.Last+1 {
		d.early[n.Seq] = n
		return nil
	}
	d.Last = n.Seq
	return append([]Notification{n}, d.drain()...)
}

// drain returns the held notifications that now follow Last.
func (d *Device) drain() []Notification {
	var due []Notification
	for n, ok := d.early[d.Last+1]; ok; n, ok = d.early[d.Last+1] {
		delete(d.early, n.Seq)
		d.Last = n.Seq
		due = append(due, n)
	}
	return due
}

// ask sends a catch-up from Last.
func (d *Device) ask() error {
	d.asked = true
	return d.c.Emit(EventCatchUp, CatchUp{Last: d.Last})
}

// runDevice is the -device program: a device that prints what it applies
// and reconnects, with its Last, whenever the connection ends.
func runDevice(ctx context.Context, cfg config, user string, last uint64, out io.Writer) error {
	d := &Device{Token: user, Last: last}
	defer d.Close()
	url := "ws://" + cfg.Addr + "/ws"
	for ctx.Err() == nil {
		if err := d.Connect(ctx, url); err != nil {
			fmt.Fprintf(out, "connect: %v\n", err)
		} else {
			fmt.Fprintf(out, "connected as %s, last #%d\n", user, d.Last)
			err := d.listen(ctx, out)
			fmt.Fprintf(out, "disconnected (%v), last #%d\n", err, d.Last)
		}
		select { // a pause, so that a server in trouble is not hammered
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
	return nil
}

// listen prints updates until the connection or ctx ends.
func (d *Device) listen(ctx context.Context, out io.Writer) error {
	for {
		// Wake up to heartbeat well within the server's 90 s.
		wait, cancel := context.WithTimeout(ctx, 30*time.Second)
		u, err := d.Next(wait)
		cancel()
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, context.DeadlineExceeded):
			if err := d.Heartbeat(); err != nil {
				return err
			}
			continue
		case err != nil:
			return err
		}
		if u.Reset {
			fmt.Fprintf(out, "reset: the store no longer has all that follows; going on after #%d (a real app reloads from its API)\n", u.From)
		}
		for _, n := range u.Apply {
			fmt.Fprintf(out, "#%d %s\n", n.Seq, n.Data)
		}
	}
}

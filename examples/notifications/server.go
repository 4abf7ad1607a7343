package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	websocket "github.com/fxws/websocket"
	"github.com/fxws/websocket/helper"
	"go.uber.org/zap"
)

// The example's events, on top of the library's protocol.
const (
	// EventNotification (server → device) carries one Notification, sent
	// live as it is stored.
	EventNotification = "notification"
	// EventBacklog (server → device) carries a Backlog: the answer to the
	// last number a device sent, in authenticate or in catch-up.
	EventBacklog = "backlog"
	// EventCatchUp (device → server) carries a CatchUp: the device saw a
	// number skipped, or was asked to (resync).
	EventCatchUp = "catch-up"
	// EventResync (server → device, no data) asks every device of an
	// instance for a catch-up, after the instance lost its Redis
	// subscription: live notifications sent meanwhile never reached it.
	EventResync = "resync"
)

// CloseRetry closes a device whose catch-up could not be answered (the
// store unreachable, the device too far behind on its socket): it
// reconnects and asks again, after a pause of its own.
const CloseRetry = 4100

// maxNotification bounds a posted notification. A backlog goes out as one
// message, so BACKLOG (100) × this must stay under the server's
// BackpressureLimit (1 MiB), or a full backlog could never be queued.
const maxNotification = 4 << 10

// Credentials are the data of `authenticate`: the device's token and,
// next to it, the number of the last notification it applied.
type Credentials struct {
	Token string `json:"token"`
	Last  uint64 `json:"last"`
}

// CatchUp is the data of `catch-up`.
type CatchUp struct {
	Last uint64 `json:"last"`
}

// Backlog is the data of `backlog`, one message per request: the device
// knows when its request is answered, and so when to ask again.
type Backlog struct {
	// Last is the number the device sent, which this answers. A device
	// that has moved on since takes the notifications but not the reset.
	Last uint64 `json:"last"`
	// Reset says that the store no longer holds every notification after
	// Last: trimmed away (the device was offline too long), or lost (a
	// Redis restarted without persistence, or a memory store with its
	// process, numbering again from 1). The device moves its last number
	// to From and reloads what it shows from the app's own API.
	Reset bool `json:"reset,omitempty"`
	// From is the number the notifications follow: Last, or after a reset
	// the one before the oldest kept.
	From uint64 `json:"from"`
	// Notifications are those after From, in order.
	Notifications []Notification `json:"notifications"`
}

// metaLast is where authenticate leaves the device's last number for the
// connected callback.
const metaLast = "last"

// authenticate accepts {"token": <user id>, "last": <n>}; a real app
// verifies the token.
func authenticate(_ context.Context, req helper.AuthenticateRequest) (*helper.AuthResult, error) {
	var c Credentials
	if json.Unmarshal(req.Data, &c) != nil || c.Token == "" {
		return nil, nil // rejected: close 4003
	}
	// The number rides with the token because the backlog may only be read
	// once the user's channel is subscribed, in the connected callback.
	return &helper.AuthResult{UserID: c.Token, Metadata: map[string]any{metaLast: c.Last}}, nil
}

// Notifier is the server's side of the recipe: it stores a notification
// before sending it live, and answers each device's last number with what
// follows it in the store.
type Notifier struct {
	store Store
	ref   *websocket.HelperRef
	log   *zap.Logger
}

// NewNotifier returns a Notifier on store. It takes the helper's
// reference, not the helper: its handlers are the helper's dependencies.
func NewNotifier(store Store, ref *websocket.HelperRef, log *zap.Logger) *Notifier {
	return &Notifier{store: store, ref: ref, log: log}
}

// Notify stores data as the user's next notification, then sends it to
// the user's devices on every instance. Once stored, the notification is
// safe: a device that the live send misses reads it from the store, so a
// failed send is logged, not returned.
func (n *Notifier) Notify(ctx context.Context, user string, data json.RawMessage) (Notification, error) {
	no, err := n.store.Add(ctx, user, data)
	if err != nil {
		return no, err
	}
	if err := n.ref.Helper().SendToUser(ctx, user, EventNotification, no); err != nil {
		n.log.Warn("live send failed; devices catch up from the store", zap.String("user", user), zap.Uint64("seq", no.Seq), zap.Error(err))
	}
	return no, nil
}

// connected answers the number sent with `authenticate`. The library runs
// it once the user's channel is subscribed: a notification stored after
// the read below comes live, one stored before is in the read, and one
// stored in between comes both ways, which the device drops once. (Past
// SubscribeTimeout, 5 s, it runs anyway, with a warning in the log: a
// notification sent before the subscription is made is then lost until
// the next one shows the device the gap.)
func (n *Notifier) connected(ctx context.Context, info helper.ClientInfo) error {
	last, _ := info.Metadata[metaLast].(uint64)
	return n.answer(ctx, info.ClientID, info.UserID, last)
}

// message answers `catch-up`, which a device sends when it sees a number
// skipped (a live send lost) or when told to (resync).
func (n *Notifier) message(ctx context.Context, req helper.MessageRequest) error {
	if req.Message.Event != EventCatchUp {
		return nil
	}
	var c CatchUp
	if err := json.Unmarshal(req.Message.Data, &c); err != nil {
		return fmt.Errorf("catch-up from %s: %w", req.ClientID, err)
	}
	return n.answer(ctx, req.ClientID, req.UserID, c.Last)
}

// restored runs once the Redis broker has subscribed again after losing
// its subscription. What was sent live meanwhile reached none of this
// instance's devices, and only each device knows how far it got: ask them.
func (n *Notifier) restored(_ context.Context, info helper.BrokerRestoredInfo) error {
	count, err := n.ref.Helper().Broadcast(EventResync, nil)
	n.log.Info("broker restored: devices asked to catch up", zap.Int("devices", count), zap.Duration("down", info.Down))
	return err
}

// answer sends a device the backlog after last. The device waits for this
// answer before it asks again, so there is always one: the backlog, or,
// when it cannot be read or queued, a close that makes the device
// reconnect and ask again.
func (n *Notifier) answer(ctx context.Context, clientID, user string, last uint64) error {
	h := n.ref.Helper()
	b, err := n.backlog(ctx, user, last)
	if err == nil {
		var queued bool
		if queued, err = h.SendToClient(clientID, EventBacklog, b); err == nil && !queued {
			err = errors.New("not queued: the device is closing, or too far behind on its socket")
		}
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil // the device left; it sends its number again when back
		}
		_, _ = h.Disconnect(clientID, CloseRetry, "Catch-up failed")
		return fmt.Errorf("backlog of %q after %d: %w", user, last, err)
	}
	return nil
}

// backlog reads what follows last, and says whether the device must reset.
func (n *Notifier) backlog(ctx context.Context, user string, last uint64) (Backlog, error) {
	b := Backlog{Last: last, From: last}
	kept, head, err := n.store.Since(ctx, user, last)
	if err == nil && last > head {
		// The device holds numbers the store never gave: the store lost
		// its data and numbers from 1 again. Start the device over, or it
		// would drop the new numbers as ones it has.
		b.From, b.Reset = 0, true
		kept, head, err = n.store.Since(ctx, user, 0)
	}
	if err != nil {
		return b, err
	}
	first := head + 1 // the oldest kept, if none are
	if len(kept) > 0 {
		first = kept[0].Seq
	}
	if first > b.From+1 {
		// Trimmed: what lay between is gone. Say so, rather than let the
		// device take the oldest kept for the next and miss the rest.
		b.From, b.Reset = first-1, true
	}
	b.Notifications = kept
	if b.Notifications == nil {
		b.Notifications = []Notification{} // [] on the wire, not null
	}
	return b, nil
}

// serveNotify stores and sends a notification: POST /notify/{user} with the
// notification's JSON as the body; it answers {"seq": n}.
func (n *Notifier) serveNotify(w http.ResponseWriter, r *http.Request) {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxNotification))
	if err != nil || !json.Valid(data) {
		http.Error(w, fmt.Sprintf("the body must be JSON, %d bytes at most", maxNotification), http.StatusBadRequest)
		return
	}
	no, err := n.Notify(r.Context(), r.PathValue("user"), data)
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]uint64{"seq": no.Seq})
}

package helper_test

// Fuzz targets for what clients and peers can send: any inbound message,
// any join/leave payload, any broker envelope. Each runs against a real
// server over a real socket; the invariants are that the server neither
// panics nor drops the connection, keeps answering, and keeps its limits.
// Seed corpora live in testdata/fuzz/<target>/. CI runs each target for a
// bounded time (`make fuzz`).

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/fxws/websocket/broker"
	"github.com/fxws/websocket/fxtest"
	"github.com/fxws/websocket/helper"
	"github.com/fxws/websocket/protocol"
	"github.com/gobwas/ws"
)

const fuzzDepth = 16 // MaxJSONDepth of the fuzzed server

// capturedBroker is an in-process broker whose handler the fuzz target
// calls directly, as a Redis subscription would.
type capturedBroker struct {
	broker.Broker
	handler atomic.Pointer[broker.Handler]
}

func (b *capturedBroker) Start(ctx context.Context, h broker.Handler) error {
	b.handler.Store(&h)
	return b.Broker.Start(ctx, h)
}

// fuzzServer is one served helper and one authenticated client, shared by
// every input of a fuzz worker.
type fuzzServer struct {
	h      *helper.WebSocketServerHelper
	c      *fxtest.Client
	id     string
	broker *capturedBroker
	seq    atomic.Int64

	mu         sync.Mutex
	joinReqs   [][]string
	deepErrors []string
}

func newFuzzServer(f *testing.F) *fuzzServer {
	f.Helper()
	fs := &fuzzServer{broker: &capturedBroker{Broker: broker.NewMemory()}}
	var ref atomic.Pointer[helper.WebSocketServerHelper]
	h, err := helper.New(helper.Config{
		Broker: fs.broker,
		Options: helper.Options{
			AuthTimeout: 5 * time.Second, HeartbeatInterval: time.Hour, HeartbeatTimeout: time.Hour, IdleTimeout: time.Hour,
			Limits: helper.Limits{
				MaxJSONDepth:      fuzzDepth,
				MaxRoomsPerJoin:   8,
				MaxRoomsPerClient: 32,
				MessagesPerSecond: -1, // the fuzzer sends as fast as it can
			},
		},
		Handlers: helper.Handlers{
			Authenticate: tokenAuth,
			ValidateRoom: func(_ context.Context, req helper.ValidateRoomRequest) ([]string, error) {
				fs.mu.Lock()
				fs.joinReqs = append(fs.joinReqs, slices.Clone(req.Rooms))
				fs.mu.Unlock()
				// Hand back more than asked, and invalid names: the helper
				// must still keep its own rules.
				return append(slices.Clone(req.Rooms), "ws:internal:broadcast", ""), nil
			},
			Message: func(_ context.Context, req helper.MessageRequest) error {
				if len(req.Message.Data) > 0 && protocol.JSONDepthExceeds(req.Message.Data, fuzzDepth) {
					fs.mu.Lock()
					fs.deepErrors = append(fs.deepErrors, string(req.Message.Data))
					fs.mu.Unlock()
				}
				if req.Message.Event == "fuzz-probe" {
					_, _ = ref.Load().SendToClient(req.ClientID, "fuzz-probe-ack", req.Message.Data)
				}
				return nil
			},
		},
	})
	if err != nil {
		f.Fatal(err)
	}
	ref.Store(h)
	if err := h.Start(context.Background()); err != nil {
		f.Fatal(err)
	}
	srv := httptest.NewServer(h)
	fs.h = h
	f.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = h.Shutdown(ctx)
		srv.Close()
	})
	c, err := fxtest.Dial(context.Background(), "ws"+strings.TrimPrefix(srv.URL, "http")+h.Path())
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = c.Abort() })
	cd, err := c.Authenticate(context.Background(), map[string]any{"token": "valid-fuzzer"})
	if err != nil {
		f.Fatal(err)
	}
	fs.c, fs.id = c, cd.ID
	return fs
}

// send writes msg as one frame: text when it is UTF-8 (a text frame that is
// not would rightly close the connection with 1007), else binary.
func (fs *fuzzServer) send(t *testing.T, msg []byte) {
	op := ws.OpText
	if !utf8.Valid(msg) {
		op = ws.OpBinary
	}
	if err := fs.c.WriteFrame(ws.NewFrame(op, true, msg)); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// probe proves that the connection is open and that everything sent before
// has been handled, and returns (and clears) what else the client received.
func (fs *fuzzServer) probe(t *testing.T) []protocol.Message {
	t.Helper()
	n := fs.seq.Add(1)
	if err := fs.c.Emit("fuzz-probe", n); err != nil {
		t.Fatalf("probe: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		m, err := fs.c.Expect(ctx, "fuzz-probe-ack")
		if err != nil {
			t.Fatalf("server stopped answering: %v", err)
		}
		if string(m.Data) == fmt.Sprint(n) {
			break
		}
	}
	got := fs.c.Messages()
	for _, m := range got {
		// A text frame must be UTF-8: a browser fails the connection (1007)
		// on anything else.
		if !utf8.Valid(m.Data) || !utf8.ValidString(m.Event) {
			t.Fatalf("server sent invalid UTF-8: %q %q", m.Event, m.Data)
		}
	}
	fs.mu.Lock()
	deep := fs.deepErrors
	fs.deepErrors = nil
	fs.mu.Unlock()
	if len(deep) > 0 {
		t.Fatalf("message handler got data nested deeper than %d: %.200s", fuzzDepth, deep[0])
	}
	return got
}

// FuzzInboundMessage sends any bytes as a client message.
func FuzzInboundMessage(f *testing.F) {
	fs := newFuzzServer(f)
	f.Fuzz(func(t *testing.T, msg []byte) {
		fs.send(t, msg)
		fs.probe(t)
	})
}

// checkRooms verifies the rules of joining: only valid names (or the own
// id), no more than the caps.
func (fs *fuzzServer) checkRooms(t *testing.T) {
	t.Helper()
	v, ok := fs.h.GetClient(fs.id)
	if !ok {
		t.Fatal("client gone")
	}
	if len(v.Rooms) > 32 {
		t.Fatalf("client in %d rooms, over MaxRoomsPerClient 32", len(v.Rooms))
	}
	if !slices.Contains(v.Rooms, fs.id) {
		t.Fatal("client left its own-id room")
	}
	for _, r := range v.Rooms {
		if r != fs.id && !protocol.ValidRoomName(r) {
			t.Fatalf("client joined invalid room %q", r)
		}
	}
	fs.mu.Lock()
	reqs := fs.joinReqs
	fs.joinReqs = nil
	fs.mu.Unlock()
	for _, req := range reqs {
		if len(req) == 0 || len(req) > 8 {
			t.Fatalf("validate-room asked about %d rooms (MaxRoomsPerJoin 8)", len(req))
		}
		seen := map[string]bool{}
		for _, r := range req {
			if !protocol.ValidRoomName(r) || seen[r] {
				t.Fatalf("validate-room asked about %q (invalid or repeated)", r)
			}
			seen[r] = true
		}
	}
}

// FuzzJoinLeave sends any data with join and leave.
func FuzzJoinLeave(f *testing.F) {
	fs := newFuzzServer(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, ev := range []string{protocol.EventJoin, protocol.EventLeave} {
			fs.send(t, []byte(`{"event":"`+ev+`","data":`+string(data)+`}`))
			fs.probe(t)
			fs.checkRooms(t)
		}
		// Start the next input from the defaults.
		v, _ := fs.h.GetClient(fs.id)
		for _, r := range v.Rooms {
			if r != fs.id && !slices.Contains(protocol.DefaultRooms(), r) {
				fs.h.LeaveRoom(fs.id, r)
			}
		}
	})
}

// FuzzBrokerEnvelope hands any payload to the helper as if it came from
// Redis. A well-formed envelope addressed to the client must reach it with
// its event and data; anything else must harm nothing.
func FuzzBrokerEnvelope(f *testing.F) {
	fs := newFuzzServer(f)
	f.Fuzz(func(t *testing.T, payload []byte) {
		if env, err := protocol.DecodeEnvelope(payload); err == nil &&
			(env.Type == protocol.TypeDisconnectUser && env.Target == "fuzzer" || env.Type == protocol.TypeDisconnectClient && env.Target == fs.id) {
			var d protocol.DisconnectData
			if json.Unmarshal(env.Data, &d) == nil && protocol.ValidCloseCode(d.Code) {
				return // would close the probed client, as asked (TestDisconnectUserEverywhere, TestDisconnectEverywhere)
			}
		}
		deliver := *fs.broker.handler.Load()
		deliver(protocol.ChannelBroadcast, payload)
		got := fs.probe(t)
		env, err := protocol.DecodeEnvelope(payload)
		if err == nil && (env.Type == protocol.TypeJoinUser || env.Type == protocol.TypeLeaveUser) && env.Target == "fuzzer" {
			// Moved the probed client, as asked (TestAddAndRemoveUserEverywhere):
			// back to the defaults for the next input.
			v, _ := fs.h.GetClient(fs.id)
			for _, r := range v.Rooms {
				if r != fs.id && !slices.Contains(protocol.DefaultRooms(), r) {
					fs.h.LeaveRoom(fs.id, r)
				}
			}
			for _, r := range protocol.DefaultRooms() {
				fs.h.JoinRoom(fs.id, r)
			}
			return
		}
		if err != nil || env.ServerID == fs.h.ServerID() || slices.Contains(env.Exclude, fs.id) {
			return
		}
		switch {
		case env.Type == protocol.TypeBroadcast,
			env.Type == protocol.TypeRoom && (env.Target == fs.id || slices.Contains(protocol.DefaultRooms(), env.Target)),
			env.Type == protocol.TypeClient && env.Target == fs.id,
			env.Type == protocol.TypeUser && env.Target == "fuzzer":
		default:
			return
		}
		if env.Event == "fuzz-probe-ack" {
			return // taken by the probe itself
		}
		for _, m := range got {
			if m.Event == env.Event && jsonEqual(m.Data, env.Data) {
				return
			}
		}
		t.Fatalf("envelope %s addressed to the client did not reach it; got %v", payload, got)
	})
}

// jsonEqual compares two JSON texts by value (absent equals null).
func jsonEqual(a, b json.RawMessage) bool {
	var x, y any
	if len(a) > 0 && json.Unmarshal(a, &x) != nil {
		return false
	}
	if len(b) > 0 && json.Unmarshal(b, &y) != nil {
		return false
	}
	return fmt.Sprint(x) == fmt.Sprint(y)
}

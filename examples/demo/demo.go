package main

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	websocket "github.com/fxws/websocket"
	"github.com/fxws/websocket/helper"
)

// maxHooks is how many hook calls /ws-api/hooks keeps.
const maxHooks = 10_000

// demo holds the handlers of the contract and the record of their calls.
type demo struct{ hooks *hookLog }

func newDemo() *demo { return &demo{hooks: newHookLog(maxHooks)} }

// hookEntry is one recorded call, with the keys of the original's
// JSON.stringify output in its order: an absent userId (anonymous or not
// authenticated) or metadata is left out, as JSON.stringify drops undefined.
type hookEntry struct {
	Hook     string          `json:"hook"`
	ClientID string          `json:"clientId"`
	UserID   string          `json:"userId,omitempty"`
	Metadata json.RawMessage `json:"metadata,omitempty"`
	Event    string          `json:"event,omitempty"`
}

func (d *demo) record(e hookEntry) { d.hooks.add(e) }

// hookLog returns the recorded calls, oldest first, as one JSON array.
func (d *demo) hookLog() []byte { return d.hooks.JSON() }

var slowToken = regexp.MustCompile(`^slow-(\d+)-(.*)$`)

// errThrow is what the `throw` conventions fail with.
var errThrow = errors.New("boom")

// authenticate: `valid-<user>` accepts (empty user: anonymous),
// `slow-<ms>-<user>` accepts after ms milliseconds, `throw` fails, anything
// else rejects.
func (d *demo) authenticate(ctx context.Context, req helper.AuthenticateRequest) (*helper.AuthResult, error) {
	tok := stringField(req.Data, "token")
	if tok == "throw" {
		return nil, errThrow
	}
	user, ok := "", false
	if m := slowToken.FindStringSubmatch(tok); m != nil {
		if err := sleep(ctx, m[1]); err != nil {
			return nil, err
		}
		user, ok = m[2], true
	} else {
		user, ok = strings.CutPrefix(tok, "valid-")
	}
	if !ok {
		return nil, nil
	}
	return &helper.AuthResult{UserID: user, Metadata: map[string]any{"role": "tester"}}, nil
}

// sleep waits ms milliseconds (a decimal string), as setTimeout would: a
// delay beyond 2^31-1 ms fires at once.
func sleep(ctx context.Context, ms string) error {
	n, err := strconv.ParseInt(ms, 10, 64)
	if err != nil || n > math.MaxInt32 {
		n = 1
	}
	t := time.NewTimer(time.Duration(n) * time.Millisecond)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// stringField reads a string member of a JSON object; "" otherwise.
func stringField(data json.RawMessage, key string) string {
	var obj map[string]json.RawMessage
	if json.Unmarshal(data, &obj) != nil {
		return ""
	}
	var s string
	if json.Unmarshal(obj[key], &s) != nil {
		return ""
	}
	return s
}

// validateRoom allows exactly the requested rooms named public-….
func (d *demo) validateRoom(_ context.Context, req helper.ValidateRoomRequest) ([]string, error) {
	allowed := make([]string, 0, len(req.Rooms))
	for _, r := range req.Rooms {
		if strings.HasPrefix(r, "public-") {
			allowed = append(allowed, r)
		}
	}
	return allowed, nil
}

func (d *demo) clientConnected(_ context.Context, info helper.ClientInfo) error {
	e := hookEntry{Hook: "connected", ClientID: info.ClientID, UserID: info.UserID}
	if info.Metadata != nil {
		e.Metadata, _ = marshal(info.Metadata)
	}
	d.record(e)
	return nil
}

func (d *demo) clientDisconnected(_ context.Context, info helper.ClientInfo) error {
	d.record(hookEntry{Hook: "disconnected", ClientID: info.ClientID, UserID: info.UserID})
	return nil
}

// messageHandler is a constructor: the handler sends through the helper it
// is part of, which it reaches through the module's HelperRef.
func (d *demo) messageHandler(ref *websocket.HelperRef) helper.MessageFunc {
	return func(ctx context.Context, req helper.MessageRequest) error {
		d.record(hookEntry{Hook: "message", ClientID: req.ClientID, UserID: req.UserID, Event: req.Message.Event})
		switch req.Message.Event {
		case "throw":
			return errors.New("handler boom")
		case "echo":
			data := req.Message.Data
			if data == nil {
				data = json.RawMessage("null") // message.data ?? null
			} else if s, err := stringify(data); err == nil {
				data = s
			}
			return ref.Helper().Send(ctx, req.ClientID, "echo", data)
		}
		return nil
	}
}

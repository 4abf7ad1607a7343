package helper

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/fxws/websocket/protocol"
	"github.com/gobwas/ws"
	"go.uber.org/zap"
)

// ErrInvalidData is returned when a message's data cannot be encoded as JSON.
var ErrInvalidData = errors.New("websocket: data is not valid JSON")

// marshalData encodes a send's data once. A json.RawMessage is used as is
// (after validation); nil means "no data".
func marshalData(data any) (json.RawMessage, error) {
	switch d := data.(type) {
	case nil:
		return nil, nil
	case json.RawMessage:
		if d == nil {
			return nil, nil
		}
		if !json.Valid(d) {
			return nil, ErrInvalidData
		}
		return d, nil
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // as JSON.stringify
	if err := enc.Encode(data); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidData, err)
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

// encodeData is marshalData for the data of a send, which may be wrapped
// in a protocol.Latest: it returns the key too.
func encodeData(data any) (json.RawMessage, string, error) {
	key, data := protocol.SplitLatest(data)
	d, err := marshalData(data)
	return d, key, err
}

// messageFrame is the text frame of `{"event":…,"data":…}` (data omitted
// when nil), as the original's JSON.stringify({event, data}) encodes it,
// made in one allocation: the message is encoded behind room for the largest
// header, which is then written just in front of it. A message was copied
// twice before it was framed; under a flood of large echoes those copies
// were a quarter of the server's allocation, and a collection every
// 30 ms.
func messageFrame(event string, data json.RawMessage) []byte {
	const room = 10 // the largest header of a server frame
	b := protocol.AppendMessage(make([]byte, room, room+len(event)+len(data)+24), event, data)
	n := len(b) - room
	h := room - headerSize(n)
	putHeader(b[h:room], ws.OpText, n)
	return b[h:]
}

// outgoing is one message on its way to local clients: encoded and framed
// once, shared by every plain recipient.
type outgoing struct {
	event string
	data  json.RawMessage
	frame []byte

	// fromBroker: the message came from the broker, whose worker must not
	// wait for the outbound transformer (see encQueue).
	fromBroker bool
	// latest is the key of a protocol.Latest send: a recipient keeps only
	// the newest message of a key among those waiting for it.
	latest string

	// zframe is frame compressed, made by the first recipient that takes
	// compressed frames and shared like frame; it points to an empty slice
	// when compressing does not shrink frame. Behind a pointer so that a
	// message nobody compresses pays 8 bytes for it.
	zframe atomic.Pointer[[]byte]
}

// frameFor is the frame c gets: the compressed one for a client that
// takes them (see Options.CompressMinSize), when m is large enough.
func (m *outgoing) frameFor(c *client, minSize, level int) []byte {
	if !c.compressOut || len(m.frame) < minSize {
		return m.frame
	}
	return m.compressed(level)
}

// compressed returns the compressed frame, making it on first use. Two
// recipients may race to make it; both results are the same bytes.
func (m *outgoing) compressed(level int) []byte {
	z := m.zframe.Load()
	if z == nil {
		b := compressFrame(m.frame, level)
		m.zframe.CompareAndSwap(nil, &b)
		z = m.zframe.Load()
	}
	if len(*z) == 0 {
		return m.frame
	}
	return *z
}

func newOutgoing(event string, data json.RawMessage) *outgoing {
	return &outgoing{event: event, data: data, frame: messageFrame(event, data)}
}

// newLatestOutgoing is newOutgoing for a send with a protocol.Latest key
// (or none).
func newLatestOutgoing(event string, data json.RawMessage, latest string) *outgoing {
	m := newOutgoing(event, data)
	m.latest = latest
	return m
}

func newErrorMessage(text string) *outgoing {
	data, _ := json.Marshal(protocol.ErrorData{Message: text})
	return newOutgoing(protocol.EventError, data)
}

// sendError sends an error event; it is the one event that reaches clients
// that have not authenticated.
//
// An authenticated, encrypted client gets it through the outbound
// transformer like any other message (the original does the same), since
// its client decrypts everything after `connected`.
func (h *WebSocketServerHelper) sendError(c *client, text string) {
	if c.authenticated() && c.info.encrypted() && h.handlers.OutboundTransformer != nil {
		// A message of its own: the transformer is the application's
		// code, and the shared ones must stay as built.
		h.deliverOneEncrypted(c, newErrorMessage(text), false)
		return
	}
	m := h.errorMessages[text]
	if m == nil {
		m = newErrorMessage(text)
	}
	c.send(m.frame)
}

// deliver hands m to each authenticated recipient not in exclude. Plain
// clients get the shared frame; encrypted clients go through the outbound
// transformer, in parallel up to EncryptedBatchLimit, before deliver returns,
// so that one client's messages keep their order; for a message from the
// broker, they are queued instead, each client's in order (encQueue), and
// not counted in the result.
func (h *WebSocketServerHelper) deliver(recipients []*client, m *outgoing, exclude []string) int {
	var encrypted []*client
	n, nz := 0, 0
	transform := h.handlers.OutboundTransformer != nil
	fanout := len(recipients) > 1
	minSize, level := h.opts.CompressMinSize, h.opts.CompressLevel
	for _, c := range recipients {
		if !c.authenticated() || (len(exclude) > 0 && contains(exclude, c.id)) {
			continue
		}
		if transform && c.info.encrypted() {
			encrypted = append(encrypted, c)
			continue
		}
		f := m.frameFor(c, minSize, level)
		if c.push(f, false, fanout, m.latest) == sent {
			n++
			if len(f) != len(m.frame) { // only a compressed frame differs
				nz++
			}
		}
	}
	if nz > 0 {
		h.stats.deliveredCompressed.Add(uint64(nz))
	}
	if len(encrypted) > 0 {
		if m.fromBroker {
			for _, c := range encrypted {
				h.enc.add(c, m, fanout) // counted as delivered when sent
			}
		} else {
			n += h.deliverEncrypted(encrypted, m, fanout)
		}
	}
	h.stats.delivered.Add(uint64(n))
	return n
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// deliverEncrypted transforms and sends m to each encrypted client. In a
// fan-out the sealed frames go to the flushers like shared ones: a client
// with several queued then gets them in one write, which is what keeps an
// encrypted broadcast's cost per message down once the server is busy.
func (h *WebSocketServerHelper) deliverEncrypted(clients []*client, m *outgoing, fanout bool) int {
	limit := min(h.opts.EncryptedBatchLimit, len(clients))
	var wg sync.WaitGroup
	var mu sync.Mutex
	n := 0
	next := 0
	worker := func() {
		defer wg.Done()
		for {
			mu.Lock()
			if next >= len(clients) {
				mu.Unlock()
				return
			}
			c := clients[next]
			next++
			mu.Unlock()
			if h.deliverOneEncrypted(c, m, fanout) {
				mu.Lock()
				n++
				mu.Unlock()
			}
		}
	}
	wg.Add(limit)
	for i := 1; i < limit; i++ {
		go worker()
	}
	worker()
	wg.Wait()
	return n
}

func (h *WebSocketServerHelper) deliverOneEncrypted(c *client, m *outgoing, fanout bool) bool {
	var out *protocol.Message
	err := safeCall(func() error {
		var err error
		out, err = h.handlers.OutboundTransformer(c.context(), OutboundRequest{
			Client: c.lightView(), Event: m.event, Data: m.data,
		})
		return err
	})
	if err != nil {
		h.log.Error("outbound transformer failed; message dropped for client", zapClient(c.id), zap.Error(err))
		return false
	}
	frame := m.frame
	if out != nil {
		frame = messageFrame(out.Event, out.Data)
	}
	return c.push(frame, false, fanout, m.latest) == sent
}

// SendToClient delivers to one local, authenticated client (this instance
// only; Send reaches a client on any instance). It reports whether the
// message was handed to the client: false when no such client is here, or
// it is not authenticated, is closing, or is over its backpressure limit.
func (h *WebSocketServerHelper) SendToClient(clientID, event string, data any) (bool, error) {
	d, latest, err := encodeData(data)
	if err != nil {
		return false, err
	}
	c := h.reg.get(clientID)
	if c == nil {
		return false, nil
	}
	return h.deliver([]*client{c}, newLatestOutgoing(event, d, latest), nil) > 0, nil
}

// SendToRoom delivers to the members of room on this instance only, except
// the clients listed in exclude (Send, or Publish, reaches the other
// instances). It returns the number of clients reached.
func (h *WebSocketServerHelper) SendToRoom(room, event string, data any, exclude ...string) (int, error) {
	d, latest, err := encodeData(data)
	if err != nil {
		return 0, err
	}
	return h.localRoom(room, newLatestOutgoing(event, d, latest), exclude), nil
}

// Broadcast delivers to every authenticated client of this instance only,
// except those in exclude (Send with no destination reaches every
// instance). It returns the number of clients reached.
func (h *WebSocketServerHelper) Broadcast(event string, data any, exclude ...string) (int, error) {
	d, latest, err := encodeData(data)
	if err != nil {
		return 0, err
	}
	return h.localBroadcast(newLatestOutgoing(event, d, latest), exclude), nil
}

// SendToUser delivers to every connection of userID on every instance:
// locally, and through the broker (ws:user:<id>) to the others. The error is
// a publish failure; local delivery has happened regardless, so a caller
// that retries on error sends this instance's connections the message
// twice (give messages an id the client can drop twice).
func (h *WebSocketServerHelper) SendToUser(ctx context.Context, userID, event string, data any) error {
	d, latest, err := encodeData(data)
	if err != nil {
		return err
	}
	env, err := h.envelope(protocol.TypeUser, userID, event, d, nil, latest)
	if err != nil {
		return err
	}
	h.localUser(userID, newLatestOutgoing(event, d, latest))
	return h.publishPayload(ctx, env.channel, env.payload)
}

// Send is the cluster-wide send of the original's public API. With no
// destination it broadcasts; a destination that is a local client or a
// local room is delivered here and published; any other destination is
// published as a room, which reaches a client of that id on another
// instance too (every client is a member of its own-id room). An empty
// topic or nil data (an untyped nil: a nil pointer or map is sent, as JSON
// null) sends nothing and returns nil, as the original's send does with
// undefined data; for an event with no payload, pass struct{}{}
// or json.RawMessage(`null`). (SendToClient, SendToUser, SendToRoom,
// Broadcast and the emitter do send nil data: the event without a data
// member.) The clients in exclude get nothing, on any instance (an
// extension: a relay that must not echo a client's message back to it).
// The error is a publish failure; local delivery has happened regardless.
//
// It returns once the broker has taken the message: with Redis, after a
// PUBLISH round trip (concurrent calls share round trips, but for
// ModeSharded's SPUBLISH). A loop that sends to many destinations at a
// fixed rate (a game's ticks to its matches) should not send them one
// after another, each waiting for the one before: give each destination a
// long-lived goroutine of its own that sends its messages in order.
func (h *WebSocketServerHelper) Send(ctx context.Context, destination, topic string, data any, exclude ...string) error {
	if topic == "" || data == nil {
		return nil
	}
	d, latest, err := encodeData(data)
	if err != nil {
		return err
	}
	if d == nil {
		return nil
	}
	if len(exclude) == 0 {
		exclude = nil // an empty list, not an empty exclude member in envelopes
	}
	typ := protocol.TypeRoom
	switch {
	case destination == "":
		typ = protocol.TypeBroadcast
	case h.reg.get(destination) != nil:
		typ = protocol.TypeClient
	}
	env, err := h.envelope(typ, destination, topic, d, exclude, latest)
	if err != nil {
		return err
	}
	switch {
	case typ == protocol.TypeBroadcast:
		h.localBroadcast(newLatestOutgoing(topic, d, latest), exclude)
	case typ == protocol.TypeClient:
		if !contains(exclude, destination) {
			h.localClient(destination, newLatestOutgoing(topic, d, latest))
		}
	case h.reg.hasRoom(destination):
		h.localRoom(destination, newLatestOutgoing(topic, d, latest), exclude)
	}
	return h.publishPayload(ctx, env.channel, env.payload)
}

// Publish sends an envelope to the other instances only, as the emitter
// does but with this instance's id.
func (h *WebSocketServerHelper) Publish(ctx context.Context, typ protocol.MessageType, target, event string, data any, exclude ...string) error {
	if !typ.Valid() {
		return fmt.Errorf("websocket: publish: unknown message type %q", typ)
	}
	d, latest, err := encodeData(data)
	if err != nil {
		return err
	}
	return h.publish(ctx, typ, target, event, d, exclude, latest)
}

func (h *WebSocketServerHelper) publish(ctx context.Context, typ protocol.MessageType, target, event string, data json.RawMessage, exclude []string, latest string) error {
	env, err := h.envelope(typ, target, event, data, exclude, latest)
	if err != nil {
		return err
	}
	return h.publishPayload(ctx, env.channel, env.payload)
}

// encodedEnvelope is an envelope of this instance's, ready to publish.
type encodedEnvelope struct {
	channel string
	payload []byte
}

// envelope encodes a send's envelope before anything of the send is
// delivered, so that one the other instances would drop as too large
// fails whole.
func (h *WebSocketServerHelper) envelope(typ protocol.MessageType, target, event string, data json.RawMessage, exclude []string, latest string) (encodedEnvelope, error) {
	if typ != protocol.TypeBroadcast && target == "" {
		return encodedEnvelope{}, fmt.Errorf("websocket: publish: %s envelope needs a target", typ)
	}
	env := protocol.Envelope{ServerID: h.serverID, Type: typ, Target: target, Event: event, Data: data, Exclude: exclude, Latest: latest}
	payload, err := h.encodeEnvelope(&env)
	return encodedEnvelope{env.Channel(), payload}, err
}

// ErrEnvelopeTooLarge is returned by a send whose envelope would be over
// Options.MaxEnvelopeLength, which the other instances would drop.
// Nothing of the send was delivered.
var ErrEnvelopeTooLarge = errors.New("websocket: envelope over MaxEnvelopeLength")

// encodeEnvelope encodes env, or refuses it past MaxEnvelopeLength.
func (h *WebSocketServerHelper) encodeEnvelope(env *protocol.Envelope) ([]byte, error) {
	payload := protocol.AppendEnvelope(make([]byte, 0, len(h.selfPrefix)+len(env.Event)+len(env.Target)+len(env.Data)+len(env.Latest)+60), env)
	if max := h.opts.MaxEnvelopeLength; max > 0 && len(payload) > max {
		return nil, fmt.Errorf("%w: %d bytes, the limit is %d (the other instances would drop it)", ErrEnvelopeTooLarge, len(payload), max)
	}
	return payload, nil
}

// publishPayload publishes an encoded envelope on channel: its own, or
// for a join-user or leave-user order the broadcast channel too (see
// userOrders).
func (h *WebSocketServerHelper) publishPayload(ctx context.Context, channel string, payload []byte) error {
	if err := h.broker.Publish(ctx, channel, payload); err != nil {
		h.stats.publishErrors.Add(1)
		if ok, n := h.publishLog.Allow(); ok {
			h.log.Warn("publish failed", zap.String("channel", channel), zap.Error(err), zap.Uint64("suppressed", n))
		}
		return fmt.Errorf("websocket: publish to %s: %w", channel, err)
	}
	return nil
}

func (h *WebSocketServerHelper) localClient(id string, m *outgoing) int {
	c := h.reg.get(id)
	if c == nil {
		return 0
	}
	return h.deliver([]*client{c}, m, nil)
}

func (h *WebSocketServerHelper) localRoom(room string, m *outgoing, exclude []string) int {
	rs := getRecipients()
	defer putRecipients(rs)
	*rs = h.reg.appendRoom(*rs, room)
	return h.deliver(*rs, m, exclude)
}

func (h *WebSocketServerHelper) localUser(userID string, m *outgoing) int {
	rs := getRecipients()
	defer putRecipients(rs)
	*rs = h.reg.appendUser(*rs, userID)
	return h.deliver(*rs, m, nil)
}

func (h *WebSocketServerHelper) localBroadcast(m *outgoing, exclude []string) int {
	rs := getRecipients()
	defer putRecipients(rs)
	*rs = h.reg.appendAll(*rs)
	return h.deliver(*rs, m, exclude)
}

// onBrokerMessage delivers an envelope from another instance or an emitter.
func (h *WebSocketServerHelper) onBrokerMessage(channel string, payload []byte) {
	if bytes.HasPrefix(payload, h.selfPrefix) {
		return // our own envelope, back from a channel we listen on
	}
	if max := h.opts.MaxEnvelopeLength; max > 0 && len(payload) > max {
		h.stats.badEnvelopes.Add(1)
		if ok, n := h.envelopeLog.Allow(); ok {
			h.log.Warn("dropping envelope over MaxEnvelopeLength", zap.String("channel", channel),
				zap.Int("bytes", len(payload)), zap.Int("limit", max), zap.ByteString("start", payload[:min(len(payload), 120)]), zap.Uint64("suppressed", n))
		}
		return
	}
	env, err := protocol.DecodeEnvelope(payload)
	if err != nil {
		h.stats.badEnvelopes.Add(1)
		if ok, n := h.envelopeLog.Allow(); ok {
			h.log.Warn("dropping unreadable envelope", zap.String("channel", channel), zap.Error(err), zap.Uint64("suppressed", n))
		}
		return
	}
	if env.ServerID == h.serverID {
		return
	}
	m := newLatestOutgoing(env.Event, env.Data, env.Latest)
	m.fromBroker = true
	switch env.Type {
	case protocol.TypeBroadcast:
		h.localBroadcast(m, env.Exclude)
	case protocol.TypeRoom:
		if env.Target != "" {
			h.localRoom(env.Target, m, env.Exclude)
		}
	case protocol.TypeClient:
		if env.Target != "" {
			h.localClient(env.Target, m)
		}
	case protocol.TypeUser:
		if env.Target != "" {
			h.localUser(env.Target, m)
		}
	case protocol.TypeDisconnectUser, protocol.TypeDisconnectClient:
		if !h.disconnectFromBroker(env.Type, env.Target, env.Data, env.Exclude) {
			h.stats.badEnvelopes.Add(1)
			if ok, n := h.envelopeLog.Allow(); ok {
				h.log.Warn("dropping disconnect envelope without a target or a valid close code", zap.String("channel", channel), zap.Uint64("suppressed", n))
			}
		}
	case protocol.TypeJoinUser, protocol.TypeLeaveUser:
		if !h.userRoomsFromBroker(env.Type, env.Target, env.Data) {
			h.stats.badEnvelopes.Add(1)
			if ok, n := h.envelopeLog.Allow(); ok {
				h.log.Warn("dropping join-user or leave-user envelope without a user or a rooms list", zap.String("channel", channel), zap.Uint64("suppressed", n))
			}
		}
	default:
		h.stats.badEnvelopes.Add(1)
		if ok, n := h.envelopeLog.Allow(); ok {
			h.log.Warn("dropping envelope of unknown type", zap.String("channel", channel), zap.String("type", string(env.Type)), zap.Uint64("suppressed", n))
		}
	}
}

package broker

import (
	"context"
	"slices"
	"sync"
)

// MemoryHub connects in-process brokers, the way one Redis server connects
// several instances. Brokers made from the same hub see each other's
// publishes; tests use it to put several helpers side by side in one process.
type MemoryHub struct {
	mu   sync.RWMutex
	subs map[string][]*Memory // channel → subscribed brokers (usually one or two)
}

// NewMemoryHub returns an empty hub.
func NewMemoryHub() *MemoryHub {
	return &MemoryHub{subs: make(map[string][]*Memory)}
}

// NewBroker returns a broker attached to the hub. It receives only the
// channels it subscribes to, as a Redis broker in audience mode does.
func (hub *MemoryHub) NewBroker() *Memory { return &Memory{hub: hub} }

// Memory is the in-process Broker. Publish delivers synchronously to the
// handlers of every broker of the hub subscribed to the channel, which keeps
// per-channel order without a goroutine per subscriber.
type Memory struct {
	hub *MemoryHub
	// alone: a broker on a hub of its own (NewMemory). Nothing it
	// publishes can reach anyone, so it tracks no subscriptions and
	// reports itself a Firehose, which spares its helper the per-client
	// subscription bookkeeping.
	alone bool

	mu      sync.RWMutex
	handler Handler
	closed  bool
}

// NewMemory returns a broker on a hub of its own: a single instance, what an
// application without Redis runs on.
func NewMemory() *Memory {
	m := NewMemoryHub().NewBroker()
	m.alone = true
	return m
}

var (
	_ Broker   = (*Memory)(nil)
	_ Firehose = (*Memory)(nil)
)

// ReceivesAll is true for a broker made by NewMemory: with no peers, there
// is no audience to follow.
func (m *Memory) ReceivesAll() bool { return m.alone }

// Start records the handler; the in-process broker has nothing to connect.
func (m *Memory) Start(_ context.Context, h Handler) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	m.handler = h
	return nil
}

// Publish hands payload to every subscribed broker of the hub.
func (m *Memory) Publish(_ context.Context, channel string, payload []byte) error {
	m.mu.RLock()
	closed := m.closed
	m.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	m.hub.mu.RLock()
	subs := m.hub.subs[channel]
	m.hub.mu.RUnlock()
	// subs is never modified in place (see subscribe), so it can be
	// walked without the hub lock, and handlers may subscribe.
	for _, sub := range subs {
		sub.mu.RLock()
		h := sub.handler
		sub.mu.RUnlock()
		if h != nil {
			h(channel, payload)
		}
	}
	return nil
}

// Subscribe adds channels.
func (m *Memory) Subscribe(_ context.Context, channels ...string) error {
	// closed is read under the hub's lock: Close sets it before it takes
	// that lock to detach the broker, so a Subscribe racing Close either
	// finds it closed or is undone by it, never leaves it in the hub.
	m.hub.mu.Lock()
	defer m.hub.mu.Unlock()
	m.mu.RLock()
	closed := m.closed
	m.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	for _, ch := range channels {
		subs := m.hub.subs[ch]
		if !slices.Contains(subs, m) {
			// Copy on write: Publish walks the old slice unlocked.
			m.hub.subs[ch] = append(slices.Clip(subs), m)
		}
	}
	return nil
}

// Unsubscribe removes channels.
func (m *Memory) Unsubscribe(_ context.Context, channels ...string) error {
	m.hub.unsubscribe(m, channels)
	return nil
}

// Subscribed reports whether the broker currently receives channel.
func (m *Memory) Subscribed(channel string) bool {
	m.hub.mu.RLock()
	defer m.hub.mu.RUnlock()
	return slices.Contains(m.hub.subs[channel], m)
}

// Close detaches the broker from its hub.
func (m *Memory) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	m.handler = nil
	m.mu.Unlock()
	m.hub.mu.Lock()
	defer m.hub.mu.Unlock()
	for ch, subs := range m.hub.subs {
		m.hub.removeLocked(ch, subs, m)
	}
	return nil
}

func (hub *MemoryHub) unsubscribe(m *Memory, channels []string) {
	hub.mu.Lock()
	defer hub.mu.Unlock()
	for _, ch := range channels {
		hub.removeLocked(ch, hub.subs[ch], m)
	}
}

func (hub *MemoryHub) removeLocked(ch string, subs []*Memory, m *Memory) {
	i := slices.Index(subs, m)
	if i < 0 {
		return
	}
	if len(subs) == 1 {
		delete(hub.subs, ch)
		return
	}
	hub.subs[ch] = slices.Delete(slices.Clone(subs), i, i+1)
}

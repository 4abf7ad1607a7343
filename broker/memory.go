package broker

import (
	"context"
	"sync"
)

// MemoryHub connects in-process brokers, the way one Redis server connects
// several instances. Brokers made from the same hub see each other's
// publishes; it is what an application without Redis runs on, and what tests
// use to put two helpers side by side in one process.
type MemoryHub struct {
	mu   sync.RWMutex
	subs map[string]map[*Memory]struct{}
}

// NewMemoryHub returns an empty hub.
func NewMemoryHub() *MemoryHub {
	return &MemoryHub{subs: make(map[string]map[*Memory]struct{})}
}

// NewBroker returns a broker attached to the hub.
func (hub *MemoryHub) NewBroker() *Memory { return &Memory{hub: hub} }

// Memory is the in-process Broker. Publish delivers synchronously to the
// handlers of every broker of the hub subscribed to the channel, which keeps
// per-channel order without a goroutine per subscriber.
type Memory struct {
	hub *MemoryHub

	mu       sync.RWMutex
	handler  Handler
	channels map[string]struct{}
	closed   bool
}

// NewMemory returns a broker on a hub of its own: a single instance.
func NewMemory() *Memory { return NewMemoryHub().NewBroker() }

var _ Broker = (*Memory)(nil)

// Start records the handler; the in-process broker has nothing to connect.
func (m *Memory) Start(_ context.Context, h Handler) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	m.handler = h
	if m.channels == nil {
		m.channels = make(map[string]struct{})
	}
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
	defer m.hub.mu.RUnlock()
	for sub := range m.hub.subs[channel] {
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
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return ErrClosed
	}
	if m.channels == nil {
		m.channels = make(map[string]struct{})
	}
	for _, ch := range channels {
		m.channels[ch] = struct{}{}
	}
	m.mu.Unlock()
	m.hub.mu.Lock()
	defer m.hub.mu.Unlock()
	for _, ch := range channels {
		set := m.hub.subs[ch]
		if set == nil {
			set = make(map[*Memory]struct{})
			m.hub.subs[ch] = set
		}
		set[m] = struct{}{}
	}
	return nil
}

// Unsubscribe removes channels.
func (m *Memory) Unsubscribe(_ context.Context, channels ...string) error {
	m.mu.Lock()
	for _, ch := range channels {
		delete(m.channels, ch)
	}
	m.mu.Unlock()
	m.hub.unsubscribe(m, channels)
	return nil
}

// Subscribed reports whether the broker currently receives channel.
func (m *Memory) Subscribed(channel string) bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	_, ok := m.channels[channel]
	return ok
}

// Close detaches the broker from its hub.
func (m *Memory) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	chans := make([]string, 0, len(m.channels))
	for ch := range m.channels {
		chans = append(chans, ch)
	}
	m.channels = nil
	m.handler = nil
	m.mu.Unlock()
	m.hub.unsubscribe(m, chans)
	return nil
}

func (hub *MemoryHub) unsubscribe(m *Memory, channels []string) {
	hub.mu.Lock()
	defer hub.mu.Unlock()
	for _, ch := range channels {
		if set := hub.subs[ch]; set != nil {
			delete(set, m)
			if len(set) == 0 {
				delete(hub.subs, ch)
			}
		}
	}
}

package helper

import (
	"sync/atomic"
)

// JoinRoom puts a local client in room, without validation (server-side
// join). Internal names (ws:…) are refused. It reports whether the client
// is now a member.
func (h *WebSocketServerHelper) JoinRoom(clientID, room string) bool {
	c := h.reg.get(clientID)
	if c == nil {
		return false
	}
	return h.reg.join(c, room)
}

// LeaveRoom takes a local client out of room, without validation, its
// own-id room included (as in the original; a client itself can never leave
// that one). It reports whether the client was a member.
func (h *WebSocketServerHelper) LeaveRoom(clientID, room string) bool {
	c := h.reg.get(clientID)
	if c == nil {
		return false
	}
	return h.reg.leave(c, room, true)
}

// GetClients returns a snapshot of every local client.
func (h *WebSocketServerHelper) GetClients() []ClientView {
	h.reg.mu.RLock()
	defer h.reg.mu.RUnlock()
	out := make([]ClientView, 0, len(h.reg.clients))
	for _, c := range h.reg.clients {
		out = append(out, c.view())
	}
	return out
}

// GetClient returns a snapshot of one local client.
func (h *WebSocketServerHelper) GetClient(id string) (ClientView, bool) {
	h.reg.mu.RLock()
	defer h.reg.mu.RUnlock()
	c := h.reg.clients[id]
	if c == nil {
		return ClientView{}, false
	}
	return c.view(), true
}

// GetClientsByUser returns snapshots of the local connections of a user.
func (h *WebSocketServerHelper) GetClientsByUser(userID string) []ClientView {
	h.reg.mu.RLock()
	defer h.reg.mu.RUnlock()
	conns := h.reg.users[userID]
	out := make([]ClientView, 0, len(conns))
	for _, c := range conns {
		out = append(out, c.view())
	}
	return out
}

// GetClientsByRoom returns snapshots of the local members of a room.
func (h *WebSocketServerHelper) GetClientsByRoom(room string) []ClientView {
	h.reg.mu.RLock()
	defer h.reg.mu.RUnlock()
	members := h.reg.appendRoomLocked(nil, room)
	out := make([]ClientView, 0, len(members))
	for _, c := range members {
		out = append(out, c.view())
	}
	return out
}

// Stats are the helper's counters.
type Stats struct {
	// Clients is the number of local connections; Authenticated, those
	// past authentication; Rooms and Users, the non-empty local indexes.
	Clients, Authenticated, Rooms, Users int
	// Subscriptions is the number of broker channels held for the local
	// audience (ws:broadcast not included).
	Subscriptions int
	// ConnectionsTotal counts every upgrade since start.
	ConnectionsTotal uint64
	// Delivered counts frames handed to sockets; DroppedBackpressure,
	// messages not queued because a client's buffer was full.
	Delivered, DroppedBackpressure uint64
	// PublishErrors counts failed broker publishes; BadEnvelopes, envelopes
	// dropped as unreadable; HandlerErrors, failed message callbacks.
	PublishErrors, BadEnvelopes, HandlerErrors uint64
	// MemoryReleases counts the times memory was handed back to the OS
	// after connections dropped (Options.ReleaseMemoryAfter).
	MemoryReleases uint64
	// InflatedMessages counts compressed client messages inflated
	// (Options.PerMessageDeflate); DeliveredCompressed, the part of
	// Delivered that went out as compressed frames
	// (Options.CompressMinSize).
	InflatedMessages, DeliveredCompressed uint64
	// RateLimited counts clients closed (1008) for going over their
	// message rate or their inflate budget (Limits).
	RateLimited uint64
}

type counters struct {
	connections, delivered, droppedBackpressure atomic.Uint64
	publishErrors, badEnvelopes, handlerErrors  atomic.Uint64
	memoryReleases                              atomic.Uint64
	inflated, deliveredCompressed               atomic.Uint64
	rateLimited                                 atomic.Uint64
	authenticated                               atomic.Int64
}

// Stats returns the current counters.
func (h *WebSocketServerHelper) Stats() Stats {
	clients, rooms, users := h.reg.counts()
	return Stats{
		Clients:             clients,
		Authenticated:       int(h.stats.authenticated.Load()),
		Rooms:               rooms,
		Users:               users,
		Subscriptions:       h.subs.count(),
		ConnectionsTotal:    h.stats.connections.Load(),
		Delivered:           h.stats.delivered.Load(),
		DroppedBackpressure: h.stats.droppedBackpressure.Load(),
		PublishErrors:       h.stats.publishErrors.Load(),
		BadEnvelopes:        h.stats.badEnvelopes.Load(),
		InflatedMessages:    h.stats.inflated.Load(),
		DeliveredCompressed: h.stats.deliveredCompressed.Load(),
		HandlerErrors:       h.stats.handlerErrors.Load(),
		MemoryReleases:      h.stats.memoryReleases.Load(),
		RateLimited:         h.stats.rateLimited.Load(),
	}
}

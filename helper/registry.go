package helper

import (
	"strings"
	"sync"

	"github.com/fxws/websocket/protocol"
)

// registry indexes the local clients by id, room and user, and tells the
// subscription manager whenever a room, user or client gains its first or
// loses its last local member, so that this instance listens on the broker
// exactly for its own audience.
type registry struct {
	mu      sync.RWMutex
	clients map[string]*client
	rooms   map[string]map[*client]struct{}
	users   map[string]map[*client]struct{}
	subs    *subscriptions
}

func newRegistry(subs *subscriptions) *registry {
	return &registry{
		clients: make(map[string]*client),
		rooms:   make(map[string]map[*client]struct{}),
		users:   make(map[string]map[*client]struct{}),
		subs:    subs,
	}
}

func (r *registry) add(c *client) {
	r.mu.Lock()
	r.clients[c.id] = c
	r.mu.Unlock()
}

func (r *registry) get(id string) *client {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.clients[id]
}

func (r *registry) len() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.clients)
}

// bind indexes an authenticated client under its user and its own channel.
// It returns false if the client is already gone.
func (r *registry) bind(c *client, userID string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c.gone {
		return false
	}
	c.bound, c.boundUser = true, userID
	if !r.subs.off {
		r.subs.want(protocol.ClientChannel(c.id))
	}
	if userID != "" {
		set := r.users[userID]
		if set == nil {
			set = make(map[*client]struct{}, 1)
			r.users[userID] = set
			if !r.subs.off {
				r.subs.want(protocol.UserChannel(userID))
			}
		}
		set[c] = struct{}{}
	}
	return true
}

// join adds c to room. Internal names (ws:…) never get members.
func (r *registry) join(c *client, room string) bool {
	if room == "" || strings.HasPrefix(room, protocol.InternalPrefix) {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if c.gone {
		return false
	}
	if _, ok := c.rooms[room]; ok {
		return true
	}
	set := r.rooms[room]
	if set == nil {
		set = make(map[*client]struct{}, 1)
		r.rooms[room] = set
		if !r.subs.off {
			r.subs.want(protocol.RoomChannel(room))
		}
	}
	set[c] = struct{}{}
	if c.rooms == nil {
		c.rooms = make(map[string]struct{}, 4)
	}
	c.rooms[room] = struct{}{}
	return true
}

// leave removes c from room. Only the server may take a client out of its
// own-id room (force); a client's own leave never does, since cross-instance
// sends to the client travel through that room.
func (r *registry) leave(c *client, room string, force bool) bool {
	if room == c.id && !force {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := c.rooms[room]; !ok {
		return false
	}
	delete(c.rooms, room)
	r.dropFromRoomLocked(c, room)
	return true
}

func (r *registry) dropFromRoomLocked(c *client, room string) {
	set := r.rooms[room]
	delete(set, c)
	if len(set) == 0 {
		delete(r.rooms, room)
		if !r.subs.off {
			r.subs.unwant(protocol.RoomChannel(room))
		}
	}
}

// remove takes c out of every index. It is idempotent.
func (r *registry) remove(c *client) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c.gone {
		return
	}
	c.gone = true
	for room := range c.rooms {
		r.dropFromRoomLocked(c, room)
	}
	c.rooms = nil
	if c.bound {
		if !r.subs.off {
			r.subs.unwant(protocol.ClientChannel(c.id))
		}
		if u := c.boundUser; u != "" {
			set := r.users[u]
			delete(set, c)
			if len(set) == 0 {
				delete(r.users, u)
				if !r.subs.off {
					r.subs.unwant(protocol.UserChannel(u))
				}
			}
		}
	}
	if r.clients[c.id] == c {
		delete(r.clients, c.id)
	}
}

// Snapshots copy recipients into dst so that no lock is held while frames
// are written.

func (r *registry) appendAll(dst []*client) []*client {
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, c := range r.clients {
		dst = append(dst, c)
	}
	return dst
}

func (r *registry) appendRoom(dst []*client, room string) []*client {
	r.mu.RLock()
	defer r.mu.RUnlock()
	for c := range r.rooms[room] {
		dst = append(dst, c)
	}
	return dst
}

func (r *registry) appendUser(dst []*client, userID string) []*client {
	r.mu.RLock()
	defer r.mu.RUnlock()
	for c := range r.users[userID] {
		dst = append(dst, c)
	}
	return dst
}

func (r *registry) hasRoom(room string) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	_, ok := r.rooms[room]
	return ok
}

func (r *registry) counts() (clients, rooms, users int) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.clients), len(r.rooms), len(r.users)
}

var recipientPool = sync.Pool{New: func() any { s := make([]*client, 0, 256); return &s }}

func getRecipients() *[]*client { return recipientPool.Get().(*[]*client) }

func putRecipients(p *[]*client) {
	clear(*p)
	*p = (*p)[:0]
	if cap(*p) <= 1<<16 {
		recipientPool.Put(p)
	}
}

package helper

import (
	"slices"
	"strings"
	"sync"

	"github.com/fxws/websocket/protocol"
)

// registry indexes the local clients by id, room and user, and tells the
// subscription manager whenever a room, user or client gains its first or
// loses its last local member, so that this instance listens on the broker
// exactly for its own audience.
//
// Memory per idle connection matters more here than anywhere: a client's
// rooms are a short slice, a user's connections a slice (most users have one
// or two), and a client's own-id room is not stored as a room at all — it is
// the client itself, flagged by inOwnRoom. Only shared rooms, which can be
// large, are sets.
type registry struct {
	mu      sync.RWMutex
	clients map[string]*client
	rooms   map[string]map[*client]struct{}
	users   map[string][]*client
	subs    *subscriptions

	// byFD holds the clients again, at their socket's descriptor, and
	// spill those without one (or whose slot a closing client still
	// held): the order of a broadcast. Sending in descriptor order, not
	// a map's random one, walks the kernel's descriptor table and socket
	// objects (allocated in connection order) in order too, which is
	// cheaper on both sides of a loopback connection: a 10 000-client
	// broadcast took about 5 % less CPU per delivered message. It is also
	// a scan of a dense array instead of a map.
	byFD  []*client
	spill map[*client]struct{}

	// pause, if set, is called without the lock between stretches of a
	// long removal (see pacer); the helper sets it.
	pause func()

	// log, with Options.RoomsChangedByServer, gets every change of the
	// rooms of the clients whose logRooms is set, made under the lock, in
	// the order made; nil otherwise. startTeller starts telling a
	// client's log (see roomLogs.add), called without the lock.
	log         *roomLogs
	startTeller func(*client)
}

func newRegistry(subs *subscriptions) *registry {
	return &registry{
		clients: make(map[string]*client),
		rooms:   make(map[string]map[*client]struct{}),
		users:   make(map[string][]*client),
		subs:    subs,
		spill:   make(map[*client]struct{}),
	}
}

func (r *registry) add(c *client) {
	r.mu.Lock()
	r.clients[c.id] = c
	if fd := int(c.out.sock); fd >= 0 {
		if old := len(r.byFD); fd >= old {
			r.byFD = slices.Grow(r.byFD, fd+1-old)[:fd+1]
			clear(r.byFD[old:])
		}
		if r.byFD[fd] == nil {
			r.byFD[fd] = c
			r.mu.Unlock()
			return
		}
	}
	r.spill[c] = struct{}{}
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
		conns := r.users[userID]
		if len(conns) == 0 && !r.subs.off {
			r.subs.want(protocol.UserChannel(userID))
		}
		r.users[userID] = append(conns, c)
	}
	return true
}

// join adds c to room, reporting whether c is in it now, and whether it
// was not before. Internal names (ws:…) never get members. A change is
// the server's for the rooms-changed log (joinBy for the client's own).
func (r *registry) join(c *client, room string) (in, added bool) {
	return r.joinBy(c, room, true)
}

// joinBy is join, by the server or (server false) by the client's own
// join.
func (r *registry) joinBy(c *client, room string, server bool) (in, added bool) {
	if room == "" || strings.HasPrefix(room, protocol.InternalPrefix) {
		return false, false
	}
	r.mu.Lock()
	in, added = r.joinLocked(c, room)
	tell := added && r.logged(c, room) && r.log.add(c, roomChange{room: room, server: server})
	r.mu.Unlock()
	if tell {
		r.startTeller(c)
	}
	return in, added
}

// logged reports whether a change of c's in room goes to the
// rooms-changed log: c is past the snapshot of its rooms, and room is not
// its own-id room (ClientInfo.Rooms leaves that one out too). The caller
// holds the lock.
func (r *registry) logged(c *client, room string) bool {
	return c.logRooms && room != c.id
}

func (r *registry) joinLocked(c *client, room string) (in, added bool) {
	if c.gone {
		return false, false
	}
	if room == c.id {
		if !c.inOwnRoom {
			c.inOwnRoom = true
			if !r.subs.off {
				r.subs.want(protocol.RoomChannel(room))
			}
			return true, true
		}
		return true, false
	}
	set := r.rooms[room]
	if _, in := set[c]; in {
		return true, false // a client may be in a thousand rooms: no scan of c.rooms
	}
	if set == nil {
		set = make(map[*client]struct{}, 1)
		r.rooms[room] = set
		if !r.subs.off {
			r.subs.want(protocol.RoomChannel(room))
		}
	}
	set[c] = struct{}{}
	c.rooms = append(c.rooms, room)
	return true, true
}

// in reports whether c is a member of room.
func (r *registry) in(c *client, room string) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if c.gone {
		return false
	}
	if room == c.id {
		return c.inOwnRoom
	}
	_, in := r.rooms[room][c]
	return in
}

// roomsOf is a sorted copy of c's rooms, its own-id room left out.
func (r *registry) roomsOf(c *client) []string {
	r.mu.RLock()
	rooms := slices.Clone(c.rooms)
	r.mu.RUnlock()
	slices.Sort(rooms)
	return rooms
}

// roomsOfLogged is roomsOf, and from the same moment on the changes of
// c's rooms go to the rooms-changed log: each is either in the snapshot,
// for the connected callback, or told after it, never both nor neither.
func (r *registry) roomsOfLogged(c *client) []string {
	r.mu.Lock()
	rooms := slices.Clone(c.rooms)
	c.logRooms = r.log != nil
	r.mu.Unlock()
	slices.Sort(rooms)
	return rooms
}

// roomCount is the number of rooms c is in, its own-id room included.
func (r *registry) roomCount(c *client) int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	n := len(c.rooms)
	if c.inOwnRoom {
		n++
	}
	return n
}

// leave removes c from room. Only the server may take a client out of its
// own-id room (force); a client's own leave never does, since cross-instance
// sends to the client travel through that room. A change is the server's
// for the rooms-changed log (leaveBy for the client's own).
func (r *registry) leave(c *client, room string, force bool) bool {
	return r.leaveBy(c, room, force, true)
}

// leaveBy is leave, by the server or (server false) by the client's own
// leave.
func (r *registry) leaveBy(c *client, room string, force, server bool) bool {
	r.mu.Lock()
	left := r.leaveLocked(c, room, force)
	tell := left && r.logged(c, room) && r.log.add(c, roomChange{room: room, leave: true, server: server})
	r.mu.Unlock()
	if tell {
		r.startTeller(c)
	}
	return left
}

// unjoin takes c out of room right after its own join put it there: a
// removal of the user's from room was ordered while the join's room
// check ran (see fences). The join and this leave cancel out in the
// rooms-changed log while the join is the last change logged about the
// room (neither is told); otherwise the leave is told, as the server's.
func (r *registry) unjoin(c *client, room string) bool {
	r.mu.Lock()
	left := r.leaveLocked(c, room, false)
	tell := left && r.logged(c, room) && !r.log.cancelJoin(c, room) &&
		r.log.add(c, roomChange{room: room, leave: true, server: true})
	r.mu.Unlock()
	if tell {
		r.startTeller(c)
	}
	return left
}

func (r *registry) leaveLocked(c *client, room string, force bool) bool {
	if c.gone {
		return false // remove may be between stretches: c.rooms is detached
	}
	if room == c.id {
		if !force || !c.inOwnRoom {
			return false
		}
		c.inOwnRoom = false
		if !r.subs.off {
			r.subs.unwant(protocol.RoomChannel(room))
		}
		return true
	}
	if _, in := r.rooms[room][c]; !in {
		return false // names it is not in cost no scan of c.rooms
	}
	i := slices.Index(c.rooms, room)
	c.rooms = slices.Delete(c.rooms, i, i+1)
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
// remove takes c out of every index and returns the rooms it was in (its
// own-id room left out), which nothing else holds any more.
func (r *registry) remove(c *client) (rooms []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c.gone {
		return nil
	}
	c.gone = true
	// Detached first: between stretches, join and leave see c gone and
	// leave c.rooms alone; fan-outs may still find c in rooms not yet
	// dropped, and a closed client drops what it is sent.
	rooms = c.rooms
	c.rooms = nil
	pc := newPacer()
	for _, room := range rooms {
		r.dropFromRoomLocked(c, room)
		if r.pause != nil && pc.due() {
			r.mu.Unlock()
			r.pause()
			r.mu.Lock()
		}
	}
	if c.inOwnRoom {
		c.inOwnRoom = false
		if !r.subs.off {
			r.subs.unwant(protocol.RoomChannel(c.id))
		}
	}
	if c.bound {
		if !r.subs.off {
			r.subs.unwant(protocol.ClientChannel(c.id))
		}
		if u := c.boundUser; u != "" {
			conns := r.users[u]
			if i := slices.Index(conns, c); i >= 0 {
				conns = slices.Delete(conns, i, i+1)
			}
			if len(conns) == 0 {
				delete(r.users, u)
				if !r.subs.off {
					r.subs.unwant(protocol.UserChannel(u))
				}
			} else {
				r.users[u] = conns
			}
		}
	}
	if r.clients[c.id] == c {
		delete(r.clients, c.id)
	}
	if fd := int(c.out.sock); fd >= 0 && fd < len(r.byFD) && r.byFD[fd] == c {
		r.byFD[fd] = nil
	} else {
		delete(r.spill, c)
	}
	return rooms
}

// Snapshots copy recipients into dst so that no lock is held while frames
// are written.

func (r *registry) appendAll(dst []*client) []*client {
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, c := range r.byFD {
		if c != nil {
			dst = append(dst, c)
		}
	}
	for c := range r.spill {
		dst = append(dst, c)
	}
	return dst
}

// appendRoomLocked appends the members of room; the caller holds r.mu.
// sortedRoomSize is the smallest room sent to in descriptor order.
const sortedRoomSize = 512

func (r *registry) appendRoomLocked(dst []*client, room string) []*client {
	start := len(dst)
	for c := range r.rooms[room] {
		dst = append(dst, c)
	}
	// A large room goes out in descriptor order, as a broadcast (see
	// byFD): its members are dense among the descriptors, and the order
	// pays for the sort. A small room's members are spread over them, so
	// that the order gains nothing (rooms-10k, 100 rooms of 100, measured
	// the same either way) and the sort would cost.
	if len(dst)-start >= sortedRoomSize {
		slices.SortFunc(dst[start:], func(a, b *client) int { return int(a.out.sock) - int(b.out.sock) })
	}
	if c := r.clients[room]; c != nil && c.inOwnRoom {
		dst = append(dst, c)
	}
	return dst
}

func (r *registry) appendRoom(dst []*client, room string) []*client {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.appendRoomLocked(dst, room)
}

func (r *registry) appendUser(dst []*client, userID string) []*client {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return append(dst, r.users[userID]...)
}

func (r *registry) hasRoom(room string) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if _, ok := r.rooms[room]; ok {
		return true
	}
	c := r.clients[room]
	return c != nil && c.inOwnRoom
}

// counts reports clients, non-empty rooms (own-id rooms included) and users.
func (r *registry) counts() (clients, rooms, users int) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	rooms = len(r.rooms)
	for _, c := range r.clients {
		if c.inOwnRoom {
			rooms++
		}
	}
	return len(r.clients), rooms, len(r.users)
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

// compact rebuilds the indexes at their present size. A Go map keeps the
// space of its largest size for good, so after a crowd has gone that space
// is most of what the registry holds.
func (r *registry) compact() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.clients = rebuilt(r.clients)
	r.users = rebuilt(r.users)
	r.rooms = rebuilt(r.rooms)
	for name, set := range r.rooms {
		r.rooms[name] = rebuilt(set)
	}
	r.spill = rebuilt(r.spill)
	n := len(r.byFD)
	for n > 0 && r.byFD[n-1] == nil {
		n--
	}
	if n < cap(r.byFD)/2 {
		r.byFD = slices.Clone(r.byFD[:n])
	} else {
		clear(r.byFD[n:])
		r.byFD = r.byFD[:n]
	}
}

func rebuilt[K comparable, V any](m map[K]V) map[K]V {
	n := make(map[K]V, len(m))
	for k, v := range m {
		n[k] = v
	}
	return n
}

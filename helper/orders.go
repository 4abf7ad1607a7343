package helper

import "sync"

// userOrders applies each join-user and leave-user order once. An order
// travels twice: on the broadcast channel, which every instance hears, for
// an instance where the user's only connection is still authenticating
// (not subscribed to the user's channel yet: found in a notification-service
// trial, a follow that never reached a device logging in), and on the
// user's channel, after which what is sent to the user arrives. Whichever
// copy comes first is applied, the other dropped: the orders of one
// publisher then apply in the order sent, as each channel keeps its own
// order and a later order's first copy cannot come before an earlier
// order's copy on the same channel.
//
// The copy is applied under the lock, so that the other copy, if it comes
// meanwhile, waits for the application to end: what follows it on the
// user's channel (the room's state) still finds the rooms changed.
type userOrders struct {
	mu   sync.Mutex
	seen map[string]struct{}
	fifo []seenOrder // oldest first, for pruning; those before head are forgotten
	head int
	keep int64 // how long an id is remembered, on the mono clock
}

type seenOrder struct {
	id string
	at int64
}

// once runs apply if no copy of order id was applied within keep of now.
func (o *userOrders) once(id string, now int64, apply func()) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.pruneLocked(now)
	if _, dup := o.seen[id]; dup {
		return
	}
	if o.seen == nil {
		o.seen = make(map[string]struct{})
	}
	o.seen[id] = struct{}{}
	o.fifo = append(o.fifo, seenOrder{id, now})
	apply()
}

// expire forgets the ids older than keep; the heartbeat calls it, so that
// a burst of orders is not remembered for good on an instance that gets no
// more (as fences are let go).
func (o *userOrders) expire(now int64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.pruneLocked(now)
}

func (o *userOrders) pruneLocked(now int64) {
	i := o.head
	for i < len(o.fifo) && now-o.fifo[i].at > o.keep {
		delete(o.seen, o.fifo[i].id)
		o.fifo[i] = seenOrder{} // the id's memory goes now
		i++
	}
	o.head = i
	switch {
	case o.head == len(o.fifo):
		o.fifo, o.seen, o.head = nil, nil, 0 // a burst's storage goes too
	case o.head > 0 && o.head >= len(o.fifo)-o.head:
		// The ids still held move to the front only once the forgotten
		// ones are as many: a move at every forgotten id made each order
		// of a steady stream copy all the ids held (found in review).
		n := copy(o.fifo, o.fifo[o.head:])
		clear(o.fifo[n:])
		o.fifo, o.head = o.fifo[:n], 0
	}
}

// remembered is how many order ids are held (tests).
func (o *userOrders) remembered() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.seen)
}

package helper

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fxws/websocket/protocol"
	"github.com/gobwas/ws"
)

// fences remember for a while the closes (DisconnectUser) and the room
// removals (RemoveUserFromRooms) ordered for a user, so that what was
// under way for that user when they were ordered, and completes after
// them, does not undo them: an authentication running when the user
// logged out everywhere (the connection was bound to the user only after
// the close, and stayed open: found in a chat trial), a join the room
// check let through just before a kick. Each such step checks the fences
// raised since it began, after it has made its change, so that the
// fence's own pass over the user's connections or the check sees it.
type fences struct {
	mu     sync.Mutex
	byUser map[string][]fence
	n      atomic.Int32 // users with fences: 0 keeps the checks lock-free
	keep   int64        // how long a fence stands, on the mono clock
	pruned int64        // when byUser was last pruned
}

// fence is one close (code set), or a removal from rooms or an addition
// to them (add).
type fence struct {
	at     int64 // on the mono clock
	code   ws.StatusCode
	reason string
	except []string
	rooms  []string
	add    bool
}

// fenceFor is how long fences stand: past the longest authentication
// (AuthInProgressFactor × AuthTimeout), and 10 s at least for a slow room
// check. What began earlier than that before a fence escapes it.
func fenceFor(authTimeout time.Duration) int64 {
	return int64(max(protocol.AuthInProgressFactor*authTimeout, 10*time.Second) + time.Second)
}

// raise records f for user.
func (fs *fences) raise(user string, f fence) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.byUser == nil {
		fs.byUser = make(map[string][]fence)
	}
	if f.at-fs.pruned > fs.keep {
		fs.pruneLocked(f.at)
	}
	list := fs.byUser[user]
	list = slices.DeleteFunc(list, func(old fence) bool { return f.at-old.at > fs.keep })
	fs.byUser[user] = append(list, f)
	fs.n.Store(int32(min(len(fs.byUser), 1<<30)))
}

func (fs *fences) pruneLocked(now int64) {
	for u, list := range fs.byUser {
		if now-list[len(list)-1].at > fs.keep {
			delete(fs.byUser, u)
		}
	}
	fs.pruned = now
	fs.n.Store(int32(min(len(fs.byUser), 1<<30)))
}

// expire lets go of the fences that have stood their time, at most once
// per keep, as raise does: on an instance that sees no further raise (the
// load that raised them gone), they would otherwise stay, and keep the
// checks off their lock-free path, for good. The heartbeat calls it.
func (fs *fences) expire(now int64) {
	if !fs.active() {
		return
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if now-fs.pruned > fs.keep {
		fs.pruneLocked(now)
	}
}

// since calls f with each of user's fences raised at or after began.
func (fs *fences) since(user string, began int64, f func(fence)) {
	if user == "" || !fs.active() {
		return
	}
	fs.mu.Lock()
	list := slices.Clone(fs.byUser[user])
	fs.mu.Unlock()
	for _, fe := range list {
		if fe.at >= began {
			f(fe)
		}
	}
}

// closedSince reports the close ordered for user since began that spares
// no client id of c's, if any.
func (fs *fences) closedSince(user string, began int64, clientID string) (code ws.StatusCode, reason string, ok bool) {
	fs.since(user, began, func(fe fence) {
		if !ok && fe.code != 0 && !slices.Contains(fe.except, clientID) {
			code, reason, ok = fe.code, fe.reason, true
		}
	})
	return code, reason, ok
}

// roomsSince returns the rooms user was added to and those it was taken
// out of since began, each room by the last order about it: a room
// removed, then added again, is added.
func (fs *fences) roomsSince(user string, began int64) (added, removed []string) {
	var last map[string]bool
	fs.since(user, began, func(fe fence) {
		for _, r := range fe.rooms {
			if last == nil {
				last = make(map[string]bool, len(fe.rooms))
			}
			last[r] = fe.add
		}
	})
	for r, add := range last {
		if add {
			added = append(added, r)
		} else {
			removed = append(removed, r)
		}
	}
	return added, removed
}

// active reports whether any fence may stand: the checks skip their work
// when none does.
func (fs *fences) active() bool { return fs.n.Load() > 0 }

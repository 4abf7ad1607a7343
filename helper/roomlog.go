package helper

import (
	"slices"
	"sync"
)

// roomLogs carry the changes of clients' rooms to the rooms-changed
// callback when it is told of the server's changes too
// (Options.RoomsChangedByServer).
//
// Each change (a room joined or left, by the client itself or by the
// server) is logged as it is made, under the registry's lock, for the
// clients past the snapshot of their rooms that the connected callback
// gets (registry.roomsOfLogged): one order of the client's changes, the
// one they were made in, whoever made them and from whatever goroutine.
// The log is told in that order, a run of changes of one kind and one
// maker (all joins by the server, say) in one call, one call at a time:
//
//   - A client's own join or leave is told on its read side, as without
//     the option, once it is done: the read side tells everything logged
//     up to its last change of its own (the server's changes before it
//     included), waiting for a call under way on the client's behalf
//     first. So its calls stay in order with its messages.
//   - The server's changes are told by a short-lived goroutine started by
//     the change that finds no one telling the client's log (a task, as
//     the authenticate callback's): not the caller of JoinRoom, nor the
//     broker's worker, which only log. It tells what is logged, then ends;
//     a client with nothing to tell costs no goroutine and no entry here.
//     It stops at a change of the client's own, which its read side is
//     about to tell.
//   - Nothing is told before the connected callback has returned, nor
//     after the client's context has ended (the client is leaving): what
//     was not told is undone from the disconnect callback's rooms
//     (close), which are then the rooms the app was told of.
type roomLogs struct {
	mu       sync.Mutex
	byClient map[*client]*roomLog
	peak     int // the most entries byClient has held since it was made
}

// roomLogsRemake is the size past which byClient, once empty again, is
// made afresh: a Go map keeps the space of its largest size for good,
// and a crowd moved at once (an AddUserToRooms of thousands of users)
// would leave it behind.
const roomLogsRemake = 1024

// forgetLocked deletes c's log.
func (ls *roomLogs) forgetLocked(c *client) {
	delete(ls.byClient, c)
	if len(ls.byClient) == 0 && ls.peak > roomLogsRemake {
		ls.byClient, ls.peak = make(map[*client]*roomLog), 0
	}
}

// roomChange is one room a client joined or left.
type roomChange struct {
	room   string
	leave  bool
	server bool // made by the server (JoinRoom, AddUserToRooms, a fence), not by the client's own join or leave
}

// roomLog is what one client has to be told.
type roomLog struct {
	changes []roomChange
	own     int  // changes of the client's own among changes
	busy    bool // a goroutine is telling the log (or is being started to)
	closed  bool // the client has left: nothing more is told
	// idle is closed when busy ends; made by whoever waits for it.
	idle chan struct{}
}

func newRoomLogs() *roomLogs { return &roomLogs{byClient: make(map[*client]*roomLog)} }

// add logs ch for c; the caller holds the registry's lock, and c is not
// gone. True: a server change that no one is telling yet, for which the
// caller must start a teller (startRoomsTeller) once it has let go of
// the registry's lock.
//
// A server change that undoes the last change logged about its room, a
// server change not told yet, cancels it out instead: neither is told, as
// the app would end where it began. So a log holds one untold server
// change per room at most, and does not grow while the handler is held
// up by a server that moves a client in and out of a room.
func (ls *roomLogs) add(c *client, ch roomChange) bool {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	l := ls.byClient[c]
	if l == nil {
		l = &roomLog{}
		ls.byClient[c] = l
		ls.peak = max(ls.peak, len(ls.byClient))
	}
	if ch.server {
		for i := len(l.changes) - 1; i >= 0; i-- {
			last := l.changes[i]
			if last.room != ch.room {
				continue
			}
			if last.server && last.leave != ch.leave {
				l.changes = slices.Delete(l.changes, i, i+1)
				if len(l.changes) == 0 && !l.busy {
					ls.forgetLocked(c)
				}
				return false
			}
			break
		}
	}
	l.changes = append(l.changes, ch)
	if !ch.server {
		l.own++
		return false // the read side tells it, at the end of the join or leave
	}
	if l.busy {
		return false
	}
	l.busy = true
	return true
}

// cancelJoin drops c's own join of room from the log, if it is the last
// change logged about room: the join and the leave that follows it (a
// removal the room check missed, see fences) then cancel out, and neither
// is told. The caller holds the registry's lock.
func (ls *roomLogs) cancelJoin(c *client, room string) bool {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	l := ls.byClient[c]
	if l == nil {
		return false
	}
	for i := len(l.changes) - 1; i >= 0; i-- {
		ch := l.changes[i]
		if ch.room != room {
			continue
		}
		if ch.leave || ch.server {
			return false
		}
		l.changes = slices.Delete(l.changes, i, i+1)
		l.own--
		return true
	}
	return false
}

// nextServer takes the first run of c's log (the changes at its head of
// one kind and one maker) for the teller of the server's changes, which
// holds busy. It stops at a change of the client's own (its read side
// tells those), and at the end of the log: false, and the teller's turn
// is over, in the same step, so that a change logged after it starts a
// teller of its own.
func (ls *roomLogs) nextServer(c *client) (run roomRun, ok bool) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	l := ls.byClient[c]
	if l == nil {
		return run, false
	}
	if l.closed || len(l.changes) == 0 || !l.changes[0].server {
		ls.releaseLocked(c, l)
		return run, false
	}
	return l.takeRun(), true
}

// tellOwn tells, on c's read side, through tell, what is logged up to
// c's last change of its own: the server's changes logged before it,
// then its own, in order, once a call under way for c has returned
// (through wait). tell reports false for a run it did not tell, the
// client's context having ended: that run and the rest are left to close,
// which undoes them. True: server changes are left after it, or were
// left by a teller that stopped at a change of the client's own since
// cancelled, and the caller must start a teller for them, whose turn it
// holds.
func (ls *roomLogs) tellOwn(c *client, tell func(roomRun) bool, wait func(<-chan struct{})) (startTeller bool) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	l := ls.byClient[c]
	if l == nil || l.closed {
		return false
	}
	if l.own == 0 {
		if l.busy {
			return false
		}
		if len(l.changes) == 0 {
			// Its own changes cancelled out (cancelJoin), and no one is
			// telling: nothing to tell, no entry (it would stay until the
			// client left; found in review).
			ls.forgetLocked(c)
			return false
		}
		l.busy = true
		return true
	}
	ls.waitIdleLocked(l, wait)
	l.busy = true
	for l.own > 0 && !l.closed {
		run := l.takeRun()
		ls.mu.Unlock()
		told := tell(run)
		ls.mu.Lock()
		if !told {
			// The client is leaving: nothing more is told, its own
			// changes included (found in review: a join whose room check
			// outlasted a Disconnect was told after the context ended).
			l.unshift(run)
			ls.releaseLocked(c, l)
			return false
		}
	}
	if len(l.changes) > 0 && !l.closed {
		return true
	}
	ls.releaseLocked(c, l)
	return false
}

// roomRun is one call's worth of changes.
type roomRun struct {
	rooms  []string
	leave  bool
	server bool
}

func (l *roomLog) takeRun() roomRun {
	first := l.changes[0]
	n := 1
	for n < len(l.changes) && l.changes[n].server == first.server && l.changes[n].leave == first.leave {
		n++
	}
	run := roomRun{rooms: make([]string, n), leave: first.leave, server: first.server}
	for i := range n {
		run.rooms[i] = l.changes[i].room
	}
	if !first.server {
		l.own -= n
	}
	if n == len(l.changes) {
		l.changes = nil // a burst's storage goes with it
	} else {
		clear(l.changes[:n])
		l.changes = l.changes[n:]
	}
	return run
}

// putBack returns a run taken but not told to the head of c's log, and
// ends the teller's turn: the client's context ended first, and the run
// is then undone from its disconnect callback's rooms, as the rest of the
// log.
func (ls *roomLogs) putBack(c *client, run roomRun) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	l := ls.byClient[c]
	if l == nil {
		return // closed without waiting: nothing is undone any more
	}
	l.unshift(run)
	ls.releaseLocked(c, l)
}

// unshift returns a run taken but not told to the head of the log.
func (l *roomLog) unshift(run roomRun) {
	back := make([]roomChange, len(run.rooms), len(run.rooms)+len(l.changes))
	for i, r := range run.rooms {
		back[i] = roomChange{room: r, leave: run.leave, server: run.server}
	}
	l.changes = append(back, l.changes...)
	if !run.server {
		l.own += len(run.rooms)
	}
}

// release ends the busy turn of the goroutine that held it: a waiter is
// woken, and a log with nothing left goes.
func (ls *roomLogs) release(c *client) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if l := ls.byClient[c]; l != nil {
		ls.releaseLocked(c, l)
	}
}

func (ls *roomLogs) releaseLocked(c *client, l *roomLog) {
	l.busy = false
	if l.idle != nil {
		close(l.idle)
		l.idle = nil
	}
	if len(l.changes) == 0 && !l.closed {
		ls.forgetLocked(c)
	}
}

// waitIdleLocked waits, with ls.mu held (and let go meanwhile), until
// no goroutine holds l's busy turn. A log has one waiter at most: its
// client's read side, or its disconnect, which never overlap.
func (ls *roomLogs) waitIdleLocked(l *roomLog, wait func(<-chan struct{})) {
	for l.busy {
		if l.idle == nil {
			l.idle = make(chan struct{})
		}
		idle := l.idle
		ls.mu.Unlock()
		wait(idle)
		ls.mu.Lock()
	}
}

// close ends c's log as c leaves, and returns rooms (the rooms c was in
// when it was removed) less what the log had not told: the rooms the app
// was told of. With wait, a call under way for c is waited for first
// (through wait), so that none ends after the disconnect callback has
// begun.
func (ls *roomLogs) close(c *client, rooms []string, wait func(<-chan struct{})) []string {
	ls.mu.Lock()
	l := ls.byClient[c]
	if l == nil {
		ls.mu.Unlock()
		return rooms
	}
	l.closed = true
	if wait != nil {
		ls.waitIdleLocked(l, wait)
	}
	untold := l.changes
	l.changes, l.own = nil, 0
	ls.forgetLocked(c)
	ls.mu.Unlock()
	for i := len(untold) - 1; i >= 0; i-- {
		ch := untold[i]
		j := slices.Index(rooms, ch.room)
		switch {
		case ch.leave && j < 0:
			rooms = append(rooms, ch.room) // left untold: still in it, for the app
		case !ch.leave && j >= 0:
			rooms = slices.Delete(rooms, j, j+1) // joined untold: never in it, for the app
		}
	}
	return rooms
}

// pending is how many clients have changes logged or a teller running
// (tests).
func (ls *roomLogs) pending() int {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return len(ls.byClient)
}

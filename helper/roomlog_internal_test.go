package helper

import (
	"slices"
	"testing"
)

// The log's runs, its cancelled joins and what close undoes, by hand.
func TestRoomLogRunsAndUndo(t *testing.T) {
	ls := newRoomLogs()
	c := &client{id: "c"}
	join := func(r string, server bool) bool { return ls.add(c, roomChange{room: r, server: server}) }
	leave := func(r string, server bool) bool { return ls.add(c, roomChange{room: r, leave: true, server: server}) }

	if !join("a", true) {
		t.Fatal("the first server change must start a teller")
	}
	if join("b", true) || leave("x", true) {
		t.Fatal("a teller is running: no second one")
	}
	if join("o", false) || join("p", false) {
		t.Fatal("the client's own changes are told by its read side")
	}
	join("q", true)
	run, ok := ls.nextServer(c)
	if !ok || run.leave || !run.server || !slices.Equal(run.rooms, []string{"a", "b"}) {
		t.Fatalf("first run %+v %v, want the server's joins of a and b", run, ok)
	}
	run, ok = ls.nextServer(c)
	if !ok || !run.leave || !slices.Equal(run.rooms, []string{"x"}) {
		t.Fatalf("second run %+v %v, want the server's leave of x", run, ok)
	}
	if _, ok := ls.nextServer(c); ok {
		t.Fatal("the teller went past the client's own changes")
	}
	// Its turn is over: the read side tells the rest, up to its own last
	// change, and hands the server's after it to a teller.
	if !ls.cancelJoin(c, "p") {
		t.Fatal("the own join of p, the last change about p, is cancelled")
	}
	if ls.cancelJoin(c, "q") {
		t.Fatal("a server join is never cancelled")
	}
	var told []roomRun
	start := ls.tellOwn(c, func(r roomRun) bool { told = append(told, r); return true }, func(<-chan struct{}) { t.Fatal("waited with no one busy") })
	if !start || len(told) != 1 || told[0].server || !slices.Equal(told[0].rooms, []string{"o"}) {
		t.Fatalf("read side told %+v (teller to start: %v), want the own join of o, then a teller for q", told, start)
	}
	// The teller's run of q is put back (the client left) and undone.
	run, ok = ls.nextServer(c)
	if !ok || !slices.Equal(run.rooms, []string{"q"}) {
		t.Fatalf("run %+v %v, want q", run, ok)
	}
	ls.putBack(c, run)
	leave("r", true)
	rooms := ls.close(c, []string{"q", "keep"}, nil)
	slices.Sort(rooms)
	if !slices.Equal(rooms, []string{"keep", "r"}) {
		t.Fatalf("close left %v, want keep and r (q joined untold, r left untold)", rooms)
	}
	if ls.pending() != 0 {
		t.Fatal("a closed log is kept")
	}
}

// A crowd told at once leaves no map of its size behind.
func TestRoomLogsForgetACrowd(t *testing.T) {
	ls := newRoomLogs()
	crowd := make([]*client, 2*roomLogsRemake)
	for i := range crowd {
		crowd[i] = &client{}
		ls.add(crowd[i], roomChange{room: "match", server: true})
	}
	for _, c := range crowd {
		if _, ok := ls.nextServer(c); !ok {
			t.Fatal("nothing to tell")
		}
		if _, ok := ls.nextServer(c); ok {
			t.Fatal("told twice")
		}
	}
	if ls.pending() != 0 || ls.peak != 0 {
		t.Fatalf("%d logs kept, peak %d: want the map made afresh", ls.pending(), ls.peak)
	}
}

// A server change that undoes the last one logged about its room, untold,
// cancels it out: a server moving a client in and out of a room while the
// handler is held up grows the log by nothing.
func TestRoomLogServerChangesCancelOut(t *testing.T) {
	ls := newRoomLogs()
	c := &client{id: "c"}
	add := func(r string, leave, server bool) bool {
		return ls.add(c, roomChange{room: r, leave: leave, server: server})
	}
	if !add("a", false, true) {
		t.Fatal("the first server change must start a teller")
	}
	for range 1000 {
		add("m", false, true)
		add("m", true, true)
	}
	add("b", true, true)
	add("o", false, false) // the client's own join of o
	add("o", true, true)   // not cancelled: the last change about o is the client's own
	run, ok := ls.nextServer(c)
	if !ok || run.leave || !slices.Equal(run.rooms, []string{"a"}) {
		t.Fatalf("first run %+v %v, want the join of a alone (m's 1000 pairs cancelled out)", run, ok)
	}
	run, ok = ls.nextServer(c)
	if !ok || !run.leave || !slices.Equal(run.rooms, []string{"b"}) {
		t.Fatalf("second run %+v %v, want the leave of b", run, ok)
	}
	if _, ok := ls.nextServer(c); ok {
		t.Fatal("the teller went past the client's own change")
	}
	var told []roomRun
	ls.tellOwn(c, func(r roomRun) bool { told = append(told, r); return true }, func(<-chan struct{}) {})
	if len(told) != 1 || told[0].server || !slices.Equal(told[0].rooms, []string{"o"}) {
		t.Fatalf("read side told %+v, want the own join of o", told)
	}
	// A pair cancelled out by a log with nothing else and no teller
	// leaves no entry behind.
	d := &client{id: "d"}
	ls.add(d, roomChange{room: "x", server: true})
	if run, ok := ls.nextServer(d); !ok || !slices.Equal(run.rooms, []string{"x"}) {
		t.Fatalf("run %+v %v, want x", run, ok)
	}
	if _, ok := ls.nextServer(d); ok {
		t.Fatal("told twice")
	}
	if !ls.add(d, roomChange{room: "y", server: true}) {
		t.Fatal("a server change after the teller's turn must start one")
	}
	ls.release(d) // the teller refused (Shutdown waiting for its tasks)
	ls.add(d, roomChange{room: "y", leave: true, server: true})
	if _, ok := ls.byClient[d]; ok {
		t.Fatal("an emptied log with no teller is kept")
	}
}

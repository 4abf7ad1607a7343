package conformance

import (
	"slices"
	"strings"
	"testing"
)

// join sends a join and waits until the server has handled it.
func join(t *testing.T, c interface {
	Emit(string, any) error
}, data any) {
	t.Helper()
	if err := c.Emit("join", data); err != nil {
		t.Fatal(err)
	}
}

func TestJoinPublicOnly(t *testing.T) {
	t.Parallel()
	c, cd := authed(t, "valid-"+uniq("joiner-"))
	a, b := uniq("public-a-"), uniq("public-c-")
	priv := uniq("private-b-")
	join(t, c, map[string]any{"rooms": []string{a, priv, b}})
	eventually(t, "joined", func() bool { return slices.Contains(roomsOf(t, cd.ID), b) })
	wantRooms(t, cd.ID, append(defaultRooms(cd.ID), a, b)...)

	ev := uniq("room-ev-")
	post(t, "/ws-api/rooms/"+seg(a)+"/send", sendBody(ev, `{"r":"a"}`))
	jsonEqual(t, expect(t, c, ev), `{"r":"a"}`)
	post(t, "/ws-api/rooms/"+seg(priv)+"/send", sendBody(ev, `{"r":"priv"}`))
	expectNothing(t, c, ev)
}

func TestJoinFilters(t *testing.T) {
	t.Parallel()
	ok256 := "public-" + strings.Repeat("a", 249)                     // 256 code units
	bad257 := "public-" + strings.Repeat("a", 250)                    // 257
	emoji255 := "public-" + strings.Repeat("\U0001F600", 124)         // 7+248 = 255 units, 131 runes
	emoji257 := "public-" + strings.Repeat("\U0001F600", 125)         // 257 units, 132 runes
	accent256 := "public-" + strings.Repeat("\u00e9", 249)            // 256 units, 505 bytes
	nonBMPEdge := "public-" + strings.Repeat("\U0001F600", 124) + "b" // 256 units
	cases := []struct {
		name  string
		rooms any
		want  []string // joined beyond the defaults
	}{
		{"length 256 ok, 257 dropped", []string{ok256, bad257}, []string{ok256}},
		{"length in UTF-16 code units", []string{emoji255, emoji257, nonBMPEdge}, []string{emoji255, nonBMPEdge}},
		{"length not in bytes", []string{accent256}, []string{accent256}},
		{"non-strings dropped", []any{1, nil, true, map[string]int{"a": 1}, []string{"public-x"}, "public-str"}, []string{"public-str"}},
		{"empty dropped", []string{"", "public-e"}, []string{"public-e"}},
		{"internal prefix dropped", []string{"ws:public-x", "ws:internal:broadcast", "ws:", "public-ws"}, []string{"public-ws"}},
		{"duplicates once", []string{"public-dup", "public-dup"}, []string{"public-dup"}},
		{"prefix is case-sensitive", []string{"Public-x", "PUBLIC-y", "public-z"}, []string{"public-z"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, cd := authed(t, "valid-"+uniq("filter-"))
			join(t, c, map[string]any{"rooms": tc.rooms})
			expectOpen(t, c) // barrier: the join is handled
			want := append(defaultRooms(cd.ID), tc.want...)
			eventually(t, "rooms joined", func() bool {
				return len(roomsOf(t, cd.ID)) >= len(uniqStrings(want))
			})
			wantRooms(t, cd.ID, uniqStrings(want)...)
		})
	}
}

func uniqStrings(s []string) []string {
	var out []string
	for _, x := range s {
		if !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	return out
}

func TestJoinIgnoredShapes(t *testing.T) {
	t.Parallel()
	shapes := []string{
		`{"event":"join"}`,
		`{"event":"join","data":null}`,
		`{"event":"join","data":{}}`,
		`{"event":"join","data":{"rooms":[]}}`,
		`{"event":"join","data":{"rooms":null}}`,
		`{"event":"join","data":{"rooms":5}}`,
		`{"event":"join","data":{"rooms":["private-only"]}}`,
		`{"event":"join","data":"public-x"}`,
		`{"event":"join","data":[]}`,
		`{"event":"join","data":{"rooms":[""]}}`,
	}
	c, cd := authed(t, "valid-"+uniq("shapes-"))
	for _, s := range shapes {
		sendText(t, c, s)
	}
	expectOpen(t, c)
	wantRooms(t, cd.ID, defaultRooms(cd.ID)...)
	for _, m := range c.Messages() {
		t.Fatalf("unexpected %q: %s", m.Event, m.Data)
	}
	// join/leave never reach the message handler.
	for _, h := range hooksOf(t, cd.ID) {
		if strings.Contains(string(h.raw), `"event":"join"`) {
			t.Fatalf("join recorded as a message: %s", h.raw)
		}
	}
}

func TestLeave(t *testing.T) {
	// Serial: it broadcasts, and parallel tests check that their clients
	// get nothing unasked.
	c, cd := authed(t, "valid-"+uniq("leaver-"))
	room := uniq("public-l-")
	join(t, c, map[string]any{"rooms": []string{room}})
	eventually(t, "joined", func() bool { return slices.Contains(roomsOf(t, cd.ID), room) })
	emit(t, c, "leave", map[string]any{"rooms": []string{room, uniq("public-never-"), "ws:internal:broadcast"}})
	expectOpen(t, c)
	eventually(t, "left", func() bool { return !slices.Contains(roomsOf(t, cd.ID), room) })
	wantRooms(t, cd.ID, defaultRooms(cd.ID)...)
	ev := uniq("after-leave-")
	post(t, "/ws-api/rooms/"+seg(room)+"/send", sendBody(ev, `1`))
	expectNothing(t, c, ev)
	// Leaving the internal broadcast topic (never joined) is ignored:
	// broadcasts still arrive.
	post(t, "/ws-api/broadcast", sendBody(ev, `2`))
	jsonEqual(t, expect(t, c, ev), `2`)
}

func TestLeaveDefaultRoom(t *testing.T) {
	t.Parallel()
	c, cd := authed(t, "valid-"+uniq("nodefault-"))
	emit(t, c, "leave", map[string]any{"rooms": []string{"ws-default"}})
	expectOpen(t, c)
	eventually(t, "left ws-default", func() bool { return !slices.Contains(roomsOf(t, cd.ID), "ws-default") })
	wantRooms(t, cd.ID, cd.ID, "ws-notification")
}

func TestLeaveIgnoredShapes(t *testing.T) {
	t.Parallel()
	c, cd := authed(t, "valid-"+uniq("leaveshapes-"))
	for _, s := range []string{
		`{"event":"leave"}`,
		`{"event":"leave","data":null}`,
		`{"event":"leave","data":{"rooms":[]}}`,
		`{"event":"leave","data":{"rooms":[1,null,"public-unjoined"]}}`,
		`{"event":"leave","data":"ws-default"}`,
	} {
		sendText(t, c, s)
	}
	expectOpen(t, c)
	wantRooms(t, cd.ID, defaultRooms(cd.ID)...)
}

// TestLeaveOwnRoom: deliberate difference, the own-id room is never left.
func TestLeaveOwnRoom(t *testing.T) {
	t.Parallel()
	deliberate(t, "lets a client leave its own-id room")
	c, cd := authed(t, "valid-"+uniq("selfish-"))
	emit(t, c, "leave", map[string]any{"rooms": []string{cd.ID}})
	expectOpen(t, c)
	wantRooms(t, cd.ID, defaultRooms(cd.ID)...)
	ev := uniq("own-")
	post(t, "/ws-api/rooms/"+seg(cd.ID)+"/send", sendBody(ev, `"via room"`))
	jsonEqual(t, expect(t, c, ev), `"via room"`)
}

func TestServerJoinLeave(t *testing.T) {
	t.Parallel()
	c, cd := authed(t, "valid-"+uniq("srvjoin-"))
	room := uniq("private-srv-") // no validation server-side
	post(t, "/ws-api/clients/"+seg(cd.ID)+"/rooms/"+seg(room), "")
	wantRooms(t, cd.ID, append(defaultRooms(cd.ID), room)...)
	ev := uniq("srv-room-")
	post(t, "/ws-api/rooms/"+seg(room)+"/send", sendBody(ev, `{"hi":true}`))
	jsonEqual(t, expect(t, c, ev), `{"hi":true}`)

	// Joining twice is harmless.
	post(t, "/ws-api/clients/"+seg(cd.ID)+"/rooms/"+seg(room), "")
	wantRooms(t, cd.ID, append(defaultRooms(cd.ID), room)...)

	do(t, "DELETE", "/ws-api/clients/"+seg(cd.ID)+"/rooms/"+seg(room), "")
	wantRooms(t, cd.ID, defaultRooms(cd.ID)...)
	post(t, "/ws-api/rooms/"+seg(room)+"/send", sendBody(ev, `{"hi":false}`))
	expectNothing(t, c, ev)

	// Server-side leave of a default room.
	do(t, "DELETE", "/ws-api/clients/"+seg(cd.ID)+"/rooms/ws-notification", "")
	wantRooms(t, cd.ID, cd.ID, "ws-default")
	// Leaving a room it is not in.
	do(t, "DELETE", "/ws-api/clients/"+seg(cd.ID)+"/rooms/"+seg(uniq("nowhere-")), "")
	wantRooms(t, cd.ID, cd.ID, "ws-default")
	expectOpen(t, c)
}

func TestServerJoinUnknownClient(t *testing.T) {
	t.Parallel()
	id := uniq("ghost-")
	post(t, "/ws-api/clients/"+seg(id)+"/rooms/"+seg(uniq("room-")), "")
	if r := do(t, "DELETE", "/ws-api/clients/"+seg(id)+"/rooms/x", ""); r.status != 200 {
		t.Fatalf("DELETE for unknown client: %d %s", r.status, r.body)
	}
	if getView(t, id) != nil {
		t.Fatal("unknown client appeared")
	}
}

// TestServerLeaveOwnRoom: a server-side leave of the own-id room. The
// original removes it from the client's rooms.
func TestServerLeaveOwnRoom(t *testing.T) {
	t.Parallel()
	c, cd := authed(t, "valid-"+uniq("srvself-"))
	do(t, "DELETE", "/ws-api/clients/"+seg(cd.ID)+"/rooms/"+seg(cd.ID), "")
	wantRooms(t, cd.ID, "ws-default", "ws-notification")
	// Client-targeted sends still reach it (the client is local).
	ev := uniq("still-")
	post(t, "/ws-api/clients/"+seg(cd.ID)+"/send", sendBody(ev, `1`))
	jsonEqual(t, expect(t, c, ev), `1`)
}

// TestServerJoinInternalRoom: deliberate difference, rooms starting with
// ws: have no members.
func TestServerJoinInternalRoom(t *testing.T) {
	t.Parallel()
	deliberate(t, "lets a server-side join put a client in a ws:… room and delivers room sends there")
	c, cd := authed(t, "valid-"+uniq("internal-"))
	room := "ws:" + uniq("x-")
	post(t, "/ws-api/clients/"+seg(cd.ID)+"/rooms/"+seg(room), "")
	ev := uniq("internal-ev-")
	post(t, "/ws-api/rooms/"+seg(room)+"/send", sendBody(ev, `1`))
	expectNothing(t, c, ev)
}

// The client view lists rooms as the original's [...rooms].sort() does, by
// UTF-16 code units: a character past U+FFFF before one of U+E000–U+FFFF.
// (From a spec audit: byte order had them the other way round.)
func TestClientViewRoomsInJavaScriptOrder(t *testing.T) {
	t.Parallel()
	_, cd := authed(t, "valid-"+uniq("sorted-"))
	astral, fullwidth := "private-\U0001F600", "private-\uFF01"
	for _, r := range []string{fullwidth, astral} {
		post(t, "/ws-api/clients/"+seg(cd.ID)+"/rooms/"+seg(r), "")
	}
	rooms := roomsOf(t, cd.ID)
	i, j := slices.Index(rooms, astral), slices.Index(rooms, fullwidth)
	if i < 0 || j < 0 || i > j {
		t.Fatalf("rooms %q: want %q before %q (UTF-16 code unit order, as the original)", rooms, astral, fullwidth)
	}
}

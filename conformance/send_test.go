package conformance

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
)

func TestBroadcast(t *testing.T) {
	// Serial: it broadcasts, and parallel tests check that their clients
	// get nothing unasked.
	a, _ := authed(t, "valid-"+uniq("bca-"))
	b, _ := authed(t, "valid-")
	ev := uniq("broadcast-")
	post(t, "/ws-api/broadcast", sendBody(ev, `{"all":true}`))
	jsonEqual(t, expect(t, a, ev), `{"all":true}`)
	jsonEqual(t, expect(t, b, ev), `{"all":true}`)
	// Exactly once each.
	expectNothing(t, a, ev)
}

// TestSendDataRules: an absent data or event sends nothing; null data is
// sent as null; a body that is not JSON counts as {}.
func TestSendDataRules(t *testing.T) {
	// Serial: it broadcasts, and parallel tests check that their clients
	// get nothing unasked.
	c, cd := authed(t, "valid-"+uniq("rules-"))
	room := uniq("private-rules-")
	post(t, "/ws-api/clients/"+seg(cd.ID)+"/rooms/"+seg(room), "")
	ev := uniq("rule-")
	evJSON := mustJSON(ev)
	paths := map[string]string{
		"broadcast": "/ws-api/broadcast",
		"room":      "/ws-api/rooms/" + seg(room) + "/send",
		"client":    "/ws-api/clients/" + seg(cd.ID) + "/send",
	}
	for name, p := range paths {
		t.Run(name, func(t *testing.T) {
			for _, body := range []string{
				`{"event":` + evJSON + `}`,
				`{"data":1}`,
				`{"event":"","data":1}`,
				`{"event":null,"data":1}`,
				`{}`,
				`[]`,
				`not json`,
			} {
				r := do(t, http.MethodPost, p, body)
				if r.status != http.StatusOK {
					t.Fatalf("POST %s %s: %d", p, body, r.status)
				}
			}
			expectNothing(t, c, ev)
			noMessages(t, c) // nor an event-less message
			post(t, p, `{"event":`+evJSON+`,"data":null}`)
			if d := expect(t, c, ev); string(d) != "null" {
				t.Fatalf("null data arrived as %s", d)
			}
			post(t, p, `{"event":`+evJSON+`,"data":false}`)
			jsonEqual(t, expect(t, c, ev), `false`)
			post(t, p, `{"event":`+evJSON+`,"data":{"n":1.50,"s":"<>"}}`)
			if d := string(expect(t, c, ev)); d != `{"n":1.5,"s":"<>"}` {
				t.Fatalf("data = %s, want %s", d, `{"n":1.5,"s":"<>"}`)
			}
		})
	}
}

func TestRoomSend(t *testing.T) {
	t.Parallel()
	a, ca := authed(t, "valid-"+uniq("ra-"))
	b, cb := authed(t, "valid-"+uniq("rb-"))
	room := uniq("public-room-")
	join(t, a, map[string]any{"rooms": []string{room}})
	eventually(t, "joined", func() bool { return len(roomsOf(t, ca.ID)) == 4 })
	ev := uniq("rs-")
	post(t, "/ws-api/rooms/"+seg(room)+"/send", sendBody(ev, `{"to":"room"}`))
	jsonEqual(t, expect(t, a, ev), `{"to":"room"}`)
	expectNothing(t, b, ev)
	expectNothing(t, a, ev) // once

	// A default room reaches both.
	post(t, "/ws-api/rooms/ws-notification/send", sendBody(ev, `2`))
	jsonEqual(t, expect(t, a, ev), `2`)
	jsonEqual(t, expect(t, b, ev), `2`)

	// The own-id room of b through the room route.
	post(t, "/ws-api/rooms/"+seg(cb.ID)+"/send", sendBody(ev, `3`))
	jsonEqual(t, expect(t, b, ev), `3`)
	expectNothing(t, a, ev)

	// A room nobody is in: nothing, and the answer is still ok.
	post(t, "/ws-api/rooms/"+seg(uniq("empty-"))+"/send", sendBody(ev, `4`))
	// The internal broadcast topic is not a room.
	post(t, "/ws-api/rooms/"+seg("ws:internal:broadcast")+"/send", sendBody(ev, `5`))
	expectNothing(t, a, ev)
	expectNothing(t, b, ev)
}

func TestClientSend(t *testing.T) {
	t.Parallel()
	a, ca := authed(t, "valid-"+uniq("ca-"))
	b, _ := authed(t, "valid-"+uniq("cb-"))
	ev := uniq("cs-")
	post(t, "/ws-api/clients/"+seg(ca.ID)+"/send", sendBody(ev, `{"to":"a"}`))
	jsonEqual(t, expect(t, a, ev), `{"to":"a"}`)
	expectNothing(t, b, ev)
	expectNothing(t, a, ev)
	post(t, "/ws-api/clients/"+seg(uniq("nobody-"))+"/send", sendBody(ev, `1`))
	expectNothing(t, a, ev)
}

func TestUserSend(t *testing.T) {
	t.Parallel()
	user := uniq("carol-")
	a1, _ := authed(t, "valid-"+user)
	a2, _ := authed(t, "slow-50-"+user)
	other, _ := authed(t, "valid-"+uniq("dave-"))
	anon, _ := authed(t, "valid-")
	ev := uniq("us-")
	post(t, "/ws-api/users/"+seg(user)+"/send", sendBody(ev, `{"to":"carol"}`))
	jsonEqual(t, expect(t, a1, ev), `{"to":"carol"}`)
	jsonEqual(t, expect(t, a2, ev), `{"to":"carol"}`)
	expectNothing(t, other, ev)
	expectNothing(t, anon, ev)
	expectNothing(t, a1, ev)

	// After one connection closes, the other still gets user sends.
	_ = a1.Close()
	eventually(t, "closed", a1.Closed)
	post(t, "/ws-api/users/"+seg(user)+"/send", sendBody(ev, `2`))
	jsonEqual(t, expect(t, a2, ev), `2`)
	// Unknown user: nothing.
	post(t, "/ws-api/users/"+seg(uniq("nobody-"))+"/send", sendBody(ev, `3`))
	expectNothing(t, a2, ev)
}

// TestUserSendDataRules: the users route goes straight to sendToUser in
// the original, which has no absent-data check: {"event":"x"} is delivered
// without a data member.
func TestUserSendDataRules(t *testing.T) {
	t.Parallel()
	user := uniq("erin-")
	c, _ := authed(t, "valid-"+user)
	ev := uniq("ud-")
	post(t, "/ws-api/users/"+seg(user)+"/send", `{"event":`+mustJSON(ev)+`,"data":null}`)
	if d := expect(t, c, ev); string(d) != "null" {
		t.Fatalf("null data arrived as %s", d)
	}
	post(t, "/ws-api/users/"+seg(user)+"/send", `{"event":`+mustJSON(ev)+`}`)
	if d := expect(t, c, ev); d != nil {
		t.Fatalf("absent data arrived as %s, want no data member", d)
	}
}

// TestUserSendWithoutEvent: the original's sendToUser serialises whatever
// it is given; with no event the client gets {"data":…} alone.
func TestUserSendWithoutEvent(t *testing.T) {
	t.Parallel()
	user := uniq("frank-")
	c, _ := authed(t, "valid-"+user)
	post(t, "/ws-api/users/"+seg(user)+"/send", `{"data":{"no":"event"}}`)
	jsonEqual(t, expect(t, c, ""), `{"no":"event"}`)
}

// TestEncodedPathSegments: REST path segments are percent-decoded one by
// one (a %2F stays inside the room name).
func TestEncodedPathSegments(t *testing.T) {
	t.Parallel()
	c, cd := authed(t, "valid-"+uniq("paths-"))
	for _, room := range []string{"private-a/b", "private-sp ace", "private-\u00e9\U0001F600", "private-%41", "private-?#"} {
		post(t, "/ws-api/clients/"+seg(cd.ID)+"/rooms/"+url.PathEscape(room), "")
		if room == "private-a/b" {
			// PathEscape leaves "/" alone; send it encoded.
			post(t, "/ws-api/clients/"+seg(cd.ID)+"/rooms/private-a%2Fb", "")
		}
		ev := uniq("path-")
		post(t, "/ws-api/rooms/"+strings.ReplaceAll(url.PathEscape(room), "/", "%2F")+"/send", sendBody(ev, mustJSON(room)))
		jsonEqual(t, expect(t, c, ev), mustJSON(room))
	}
	rooms := roomsOf(t, cd.ID)
	for _, want := range []string{"private-a/b", "private-sp ace", "private-\u00e9\U0001F600", "private-%41", "private-?#"} {
		if !slices.Contains(rooms, want) {
			t.Fatalf("rooms %q lack %q", rooms, want)
		}
	}
	// An empty user segment is no route.
	if r := do(t, http.MethodPost, "/ws-api/users//send", sendBody("x", "1")); r.status != http.StatusNotFound {
		t.Fatalf("users//send: %d %s", r.status, r.body)
	}
}

// TestClientsRouteToRoom: the clients/{id}/send route is the public send,
// so a room name there reaches the room.
func TestClientsRouteToRoom(t *testing.T) {
	t.Parallel()
	c, cd := authed(t, "valid-"+uniq("route-"))
	room := uniq("private-route-")
	post(t, "/ws-api/clients/"+seg(cd.ID)+"/rooms/"+seg(room), "")
	ev := uniq("via-clients-")
	post(t, "/ws-api/clients/"+seg(room)+"/send", sendBody(ev, `"room"`))
	jsonEqual(t, expect(t, c, ev), `"room"`)
}

func TestAbortDisconnects(t *testing.T) {
	t.Parallel()
	user := uniq("aborter-")
	c, cd := authed(t, "valid-"+user)
	_ = c.Abort() // no close frame
	eventually(t, "client removed", func() bool { return getView(t, cd.ID) == nil })
	// The demo keeps the last 10 000 hook calls, which the parallel
	// tests' floods of messages may take its connected entry out of: the
	// disconnected one, last and alone, is what is asked.
	eventually(t, "disconnected hook", func() bool {
		k := hookKinds(hooksOf(t, cd.ID))
		return len(k) > 0 && k[len(k)-1] == "disconnected" && slices.Index(k, "disconnected") == len(k)-1
	})
	// The user index forgot it: a user send reaches nobody and harms nothing.
	post(t, "/ws-api/users/"+seg(user)+"/send", sendBody("x", "1"))
}

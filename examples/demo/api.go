package main

import (
	"bytes"
	"cmp"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/fxws/websocket/helper"
)

// maxBody bounds a REST request body.
const maxBody = 1 << 20

// routes dispatches as the reference server does: an upgrade request on the
// WebSocket path goes to the module (mounted on wsMux), then /healthz, then
// the REST API under /ws-api; anything else is 404 "not found".
func (d *demo) routes(h *helper.WebSocketServerHelper, wsPath string, wsMux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path := r.URL.EscapedPath()
		switch {
		case path == wsPath && strings.EqualFold(r.Header.Get("Upgrade"), "websocket"):
			wsMux.ServeHTTP(w, r)
		case path == "/healthz":
			writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
		case strings.HasPrefix(path, "/ws-api"):
			d.api(h, w, r, path)
		default:
			w.Header().Set("Content-Type", "text/plain;charset=utf-8")
			w.WriteHeader(http.StatusNotFound)
			_, _ = io.WriteString(w, "not found")
		}
	})
}

// sendBody is a POST body: {"event", "data"}. Data stays raw so that an
// absent member (nothing is sent) differs from null (null is sent).
type sendBody struct {
	Event string
	Data  json.RawMessage
}

// readBody parses a POST body as the reference does: anything that is not
// a JSON object counts as {}.
func readBody(r *http.Request) sendBody {
	var b sendBody
	if r.Method != http.MethodPost {
		return b
	}
	raw, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
	if err != nil {
		return b
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(raw, &obj) != nil {
		return b
	}
	_ = json.Unmarshal(obj["event"], &b.Event) // a non-string event counts as none
	if d, ok := obj["data"]; ok {
		b.Data = d
		if s, err := stringify(d); err == nil {
			b.Data = s // as the original's JSON.stringify of the parsed body
		}
	}
	return b
}

// dataArg turns raw data into a send argument: nil (untyped) when absent.
func dataArg(d json.RawMessage) any {
	if d == nil {
		return nil
	}
	return d
}

func (d *demo) api(h *helper.WebSocketServerHelper, w http.ResponseWriter, r *http.Request, path string) {
	var p []string
	for _, seg := range strings.Split(strings.TrimPrefix(path, "/ws-api"), "/") {
		if seg == "" {
			continue
		}
		s, err := url.PathUnescape(seg)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "bad path: " + err.Error()})
			return
		}
		p = append(p, s)
	}
	body := readBody(r)
	get, post := r.Method == http.MethodGet, r.Method == http.MethodPost
	ok := map[string]bool{"ok": true}
	ctx := r.Context()
	switch {
	case get && len(p) == 1 && p[0] == "clients":
		views := h.GetClients()
		slices.SortStableFunc(views, func(a, b helper.ClientView) int {
			if c := a.ConnectedAt.Compare(b.ConnectedAt); c != 0 {
				return c
			}
			return strings.Compare(a.ID, b.ID)
		})
		out := make([]clientView, len(views))
		for i, v := range views {
			out[i] = viewOf(v)
		}
		writeJSON(w, http.StatusOK, out)
	case get && len(p) == 2 && p[0] == "clients":
		v, found := h.GetClient(p[1])
		if !found {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": "not found"})
			return
		}
		writeJSON(w, http.StatusOK, viewOf(v))
	case get && len(p) == 1 && p[0] == "hooks":
		writeRaw(w, http.StatusOK, d.hookLog())
	case post && len(p) == 1 && p[0] == "broadcast":
		sent(w, h.Send(ctx, "", body.Event, dataArg(body.Data)))
	case post && len(p) == 3 && (p[0] == "rooms" || p[0] == "clients") && p[2] == "send":
		sent(w, h.Send(ctx, p[1], body.Event, dataArg(body.Data)))
	case post && len(p) == 3 && p[0] == "users" && p[2] == "send":
		sent(w, h.SendToUser(ctx, p[1], body.Event, dataArg(body.Data)))
	case len(p) == 4 && p[0] == "clients" && p[2] == "rooms":
		switch r.Method {
		case http.MethodPost:
			h.JoinRoom(p[1], p[3])
		case http.MethodDelete:
			h.LeaveRoom(p[1], p[3])
		}
		writeJSON(w, http.StatusOK, ok)
	default:
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no route"})
	}
}

// clientView is the contract's client view.
type clientView struct {
	ID        string         `json:"id"`
	UserID    *string        `json:"userId"` // null if anonymous
	State     string         `json:"state"`
	Rooms     []string       `json:"rooms"` // sorted
	Encrypted bool           `json:"encrypted"`
	Metadata  map[string]any `json:"metadata"` // null if none
}

func viewOf(v helper.ClientView) clientView {
	cv := clientView{ID: v.ID, State: string(v.State), Rooms: v.Rooms, Encrypted: v.Encrypted, Metadata: v.Metadata}
	if v.UserID != "" {
		cv.UserID = &v.UserID
	}
	if cv.Rooms == nil {
		cv.Rooms = []string{}
	}
	slices.SortFunc(cv.Rooms, compareUTF16)
	return cv
}

// compareUTF16 orders strings as JavaScript's default sort does, by UTF-16
// code units: a character past U+FFFF (a surrogate pair, from 0xD800)
// comes before one of U+E000–U+FFFF, where Go's byte order puts it after.
func compareUTF16(a, b string) int {
	key := func(r rune) rune {
		if r >= 0xE000 && r <= 0xFFFF {
			return r + 0x200000 // above every surrogate pair
		}
		return r
	}
	for a != "" && b != "" {
		ra, na := utf8.DecodeRuneInString(a)
		rb, nb := utf8.DecodeRuneInString(b)
		if c := cmp.Compare(key(ra), key(rb)); c != 0 {
			return c
		}
		a, b = a[na:], b[nb:]
	}
	return cmp.Compare(len(a), len(b))
}

// marshal encodes as JSON.stringify does: no HTML escaping, no newline.
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte{'\n'}), nil
}

// sent answers a send: {"ok":true}, or, when the publish to the other
// instances failed (Redis away), 503 with the error: the clients of this
// instance got it, those of the others did not. (It answered ok either
// way; a mixed-fleet trial counted the messages so lost as delivered.)
func sent(w http.ResponseWriter, err error) {
	if err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"ok": false, "error": err.Error(), "deliveredLocally": true})
		return
	}
	writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := marshal(v)
	if err != nil {
		writeRaw(w, http.StatusInternalServerError, []byte(`{"error":"encode"}`))
		return
	}
	writeRaw(w, status, b)
}

func writeRaw(w http.ResponseWriter, status int, b []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

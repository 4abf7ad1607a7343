package helper_test

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/fxws/websocket/fxtest"
	"github.com/fxws/websocket/helper"
)

// Behind a trusted proxy the client is known by the address the proxy
// forwarded, in the authenticate request and the client's view, on every
// upgrade path; without the option the headers change nothing.
func TestTrustedProxyAddress(t *testing.T) {
	both(t, func(t *testing.T, tr transport) {
		for _, tc := range []struct {
			name    string
			trusted []string
			want    func(addr string) bool
		}{
			{"trusted", []string{"127.0.0.0/8", "::1"}, func(a string) bool { return a == "198.51.100.9" }},
			{"not trusted", nil, func(a string) bool { return strings.HasPrefix(a, "127.0.0.1:") }},
		} {
			var mu sync.Mutex
			var authAddr string
			k := newKit(t, tr, func(cfg *helper.Config) {
				cfg.Options.TrustedProxies = tc.trusted
				auth := cfg.Handlers.Authenticate
				cfg.Handlers.Authenticate = func(ctx context.Context, req helper.AuthenticateRequest) (*helper.AuthResult, error) {
					mu.Lock()
					authAddr = req.RemoteAddr
					mu.Unlock()
					return auth(ctx, req)
				}
			})
			hdr := http.Header{"X-Forwarded-For": {"203.0.113.1, 198.51.100.9, 127.0.0.2"}}
			c, err := fxtest.DialHeader(context.Background(), k.url, hdr)
			if err != nil {
				t.Fatalf("%s: dial: %v", tc.name, err)
			}
			cd, err := c.Authenticate(context.Background(), map[string]any{"token": "valid-u"})
			if err != nil {
				t.Fatalf("%s: authenticate: %v", tc.name, err)
			}
			view, ok := k.h.GetClient(cd.ID)
			mu.Lock()
			got := authAddr
			mu.Unlock()
			if !ok || !tc.want(view.RemoteAddr) || !tc.want(got) {
				t.Errorf("%s: ClientView.RemoteAddr = %q, AuthenticateRequest.RemoteAddr = %q", tc.name, view.RemoteAddr, got)
			}
			_ = c.Abort()
		}
	})
}

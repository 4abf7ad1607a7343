package fxtest_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	websocket "github.com/fxws/websocket"
	"github.com/fxws/websocket/fxtest"
	"github.com/fxws/websocket/helper"
)

// DialWith reaches a server over TLS whose certificate only the test's
// own pool trusts, compressed or not (from a TLS deployment trial, which
// had to set SSL_CERT_FILE to test its wss app with the kit).
func TestDialWithTLS(t *testing.T) {
	h, err := helper.New(helper.Config{
		Options: helper.Options{PerMessageDeflate: true},
		Handlers: helper.Handlers{Authenticate: func(context.Context, helper.AuthenticateRequest) (*helper.AuthResult, error) {
			return &helper.AuthResult{UserID: "u1"}, nil
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.Start(ctx); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewTLSServer(h)
	defer func() {
		_ = h.Shutdown(ctx)
		srv.Close()
	}()
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	url := "wss" + strings.TrimPrefix(srv.URL, "https") + h.Path()
	if c, err := fxtest.Dial(ctx, url); err == nil {
		_ = c.Abort()
		t.Fatal("Dial trusted the test's own certificate without being told")
	}
	for _, compressed := range []bool{false, true} {
		c, err := fxtest.DialWith(ctx, url, fxtest.DialOptions{TLS: &tls.Config{RootCAs: roots}, Compressed: compressed})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Authenticate(ctx, map[string]string{"token": "x"}); err != nil {
			t.Fatal(err)
		}
		if c.Compressed() != compressed {
			t.Fatalf("Compressed() = %v, want %v", c.Compressed(), compressed)
		}
		_ = c.Close()
	}
}

// StartServerTLS serves wss:// with a certificate its own clients trust:
// Connect works as over ws://, and ClientTLS lets the test's own clients
// (here an HTTP client) trust it too (from a TLS deployment trial, which
// could not test its wss app with the kit).
func TestStartServerTLS(t *testing.T) {
	srv := fxtest.StartServerTLS(t, websocket.WithAuthenticate(func(context.Context, helper.AuthenticateRequest) (*helper.AuthResult, error) {
		return &helper.AuthResult{UserID: "u1"}, nil
	}))
	if !strings.HasPrefix(srv.URL(), "wss://") || !strings.HasPrefix(srv.HTTPURL(), "https://") {
		t.Fatalf("URL %s, HTTPURL %s: want wss:// and https://", srv.URL(), srv.HTTPURL())
	}
	c, id := srv.Connect(t, map[string]string{"token": "x"})
	if _, err := srv.Helper().SendToClient(id, "hello", 1); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.Expect(ctx, "hello"); err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: srv.ClientTLS()}}
	resp, err := hc.Get(srv.HTTPURL() + "/ws") // not an upgrade
	if err != nil {
		t.Fatalf("https with ClientTLS: %v", err)
	}
	resp.Body.Close()
	hc.CloseIdleConnections()
	if resp.TLS == nil {
		t.Fatal("answered without TLS")
	}
	if _, err := http.Get(srv.HTTPURL() + "/ws"); err == nil {
		t.Fatal("a client without ClientTLS trusted the test certificate")
	}
}

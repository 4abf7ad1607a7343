package fxtest_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

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

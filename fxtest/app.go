package fxtest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	websocket "github.com/fxws/websocket"
	"github.com/fxws/websocket/broker"
	"github.com/fxws/websocket/helper"
	"github.com/redis/go-redis/v9"
	"go.uber.org/fx"
)

// StartTimeout bounds the start and the stop of an app started by the kit.
const StartTimeout = 15 * time.Second

// Server is a running fx app with websocket.Module, serving on an ephemeral
// port of 127.0.0.1.
type Server struct {
	app    *fx.App
	helper *helper.WebSocketServerHelper
	addr   string
	// clientTLS trusts the server's certificate; nil: plain ws://.
	clientTLS *tls.Config

	stopOnce sync.Once
	stopErr  error
}

// Start builds and starts an fx app made of websocket.Module, a listener on
// 127.0.0.1:0 (bound under websocket.ListenerKey) and opts: the handlers,
// options and anything else the app needs. fx's own event log is off unless
// opts set fx.WithLogger. Without WithHub or WithRedis the server runs on its
// own in-process broker.
//
// An app that binds an HTTP mux (websocket.HTTPMuxKey) for routes of its
// own has the module serve that mux on the kit's listener: HTTPURL reaches
// its routes, URL the WebSocket path (the app's own serving of the mux, in
// its main, must be left out of what the test starts). Call Stop when done.
//
// The app logs nothing unless opts give it a logger: fx.Supply(zaptest.
// NewLogger(t)) shows the module's lines (a join refused for want of a
// validate-room handler, say) in the test's output. With goleak, verify
// after the kit's cleanups have stopped the app: goleak.VerifyTestMain, or
// t.Cleanup(func() { goleak.VerifyNone(t) }) registered before StartServer;
// a deferred VerifyNone runs while the app is still up.
func Start(opts ...fx.Option) (*Server, error) {
	return start(nil, nil, opts...)
}

// StartTLS is Start serving wss:// with a certificate for 127.0.0.1 made
// for the app (ECDSA P-256, valid for a day, signed by itself): URL is
// wss://, Dial and Connect trust it, and ClientTLS gives the same trust to
// clients of the test's own (DialWith, an HTTP client for HTTPURL). Upgrades
// then go through net/http, as with any TLS listener.
func StartTLS(opts ...fx.Option) (*Server, error) {
	server, client, err := selfSignedTLS()
	if err != nil {
		return nil, fmt.Errorf("fxtest: make a certificate: %w", err)
	}
	return start(server, client, opts...)
}

func start(serverTLS, clientTLS *tls.Config, opts ...fx.Option) (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("fxtest: listen: %w", err)
	}
	s := &Server{addr: ln.Addr().String(), clientTLS: clientTLS}
	if serverTLS != nil {
		ln = tls.NewListener(ln, serverTLS)
	}
	made := &madeClients{}
	all := append([]fx.Option{
		// fx falls back to printing its event log on stderr when the
		// app's logger cannot be built, as in an app with a dependency
		// cycle: the error Start returns says it all. fx.Logger is the one
		// way to set that fallback.
		fx.Logger(quietPrinter{}),
		fx.NopLogger,
		websocket.Module,
		websocket.WithListener(ln),
		fx.Populate(&s.helper),
		fx.Supply(made),
	}, opts...)
	app := fx.New(all...)
	if err := app.Err(); err != nil {
		_ = ln.Close()
		made.close() // no stop will come to close them
		return nil, fmt.Errorf("fxtest: build the app: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), StartTimeout)
	defer cancel()
	if err := app.Start(ctx); err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("fxtest: start the app: %w", err)
	}
	s.app = app
	return s, nil
}

// quietPrinter prints nothing: fx's fallback event log, in the kit.
type quietPrinter struct{}

func (quietPrinter) Printf(string, ...any) {}

// StartServer is Start for tests: it fails tb if the app does not start and
// stops the app when the test ends. Like Start, it adds websocket.Module
// itself: opts must not include it (fx would report NewHelperRef provided
// twice).
func StartServer(tb testing.TB, opts ...fx.Option) *Server {
	tb.Helper()
	s, err := Start(opts...)
	return started(tb, s, err)
}

// StartServerTLS is StartTLS for tests, as StartServer is for Start.
func StartServerTLS(tb testing.TB, opts ...fx.Option) *Server {
	tb.Helper()
	s, err := StartTLS(opts...)
	return started(tb, s, err)
}

// started fails tb if the app did not start, and stops it when the test
// ends.
func started(tb testing.TB, s *Server, err error) *Server {
	tb.Helper()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := s.Stop(); err != nil {
			tb.Errorf("fxtest: stop: %v", err)
		}
	})
	return s
}

// StartCluster starts n servers sharing one broker, as n instances of a
// deployment: a fresh in-process hub when redisAddr is empty, else the Redis
// server at redisAddr (host:port or a redis:// URL), through a client the
// kit binds (websocket.RedisConnectionKey). opts apply to every server; an
// app that binds a Redis client of its own, or needs options that differ
// by instance (an fx.Populate of each), calls StartServer once per
// instance instead. They are stopped when the test ends.
//
// Across instances, a client's own and user channels are listened on by
// the time its `connected` arrives, but a room it joins is subscribed in
// the background, as in production: before sending to that room from
// another instance, call Helper().SyncSubscriptions(ctx) on the client's
// instance, or the first sends may miss it. While Redis is away (see
// StartRedis to take it away), connects, joins and these waits go on: the
// channels are subscribed when Redis is back, about a second later, and
// what is published before that reaches nobody.
func StartCluster(tb testing.TB, n int, redisAddr string, opts ...fx.Option) []*Server {
	tb.Helper()
	var shared fx.Option
	if redisAddr == "" {
		shared = WithHub(NewHub())
	}
	servers := make([]*Server, n)
	for i := range servers {
		link := shared
		if redisAddr != "" {
			link = WithRedis(redisAddr)
		}
		servers[i] = StartServer(tb, append([]fx.Option{link}, opts...)...)
	}
	return servers
}

// NewHub returns an in-process hub for WithHub (broker.NewMemoryHub).
func NewHub() *broker.MemoryHub { return broker.NewMemoryHub() }

// WithHub binds a broker of hub (websocket.BrokerKey), so that the servers
// given the same hub reach each other's clients, as instances on one Redis.
// Each app gets its own broker, made when the app is built.
func WithHub(hub *broker.MemoryHub) fx.Option {
	return fx.Provide(fx.Annotate(
		func() broker.Broker { return hub.NewBroker() },
		fx.ResultTags(websocket.BrokerKey),
	))
}

// WithRedis binds a go-redis client for addr (host:port or a redis:// URL)
// under websocket.RedisConnectionKey, closed when the app stops.
//
// Under Start, a client made for an app that then fails to build is closed
// too.
func WithRedis(addr string) fx.Option {
	return fx.Provide(fx.Annotate(
		func(lc fx.Lifecycle, made *madeClients) (redis.UniversalClient, error) {
			opt := &redis.Options{Addr: addr}
			if strings.Contains(addr, "://") {
				var err error
				if opt, err = redis.ParseURL(addr); err != nil {
					return nil, fmt.Errorf("fxtest: redis address %q: %w", addr, err)
				}
			}
			c := redis.NewClient(opt)
			lc.Append(fx.StopHook(c.Close))
			made.add(c.Close)
			return c, nil
		},
		fx.ParamTags(``, `optional:"true"`),
		fx.ResultTags(websocket.RedisConnectionKey),
	))
}

// madeClients are the clients WithRedis made for an app of Start, closed
// by Start if the app fails to build (fx runs no stop hook then). A nil
// *madeClients (WithRedis in an app of the test's own) keeps nothing.
type madeClients struct {
	mu     sync.Mutex
	closes []func() error
}

func (m *madeClients) add(close func() error) {
	if m == nil {
		return
	}
	m.mu.Lock()
	m.closes = append(m.closes, close)
	m.mu.Unlock()
}

func (m *madeClients) close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, c := range m.closes {
		_ = c()
	}
	m.closes = nil
}

// URL is the WebSocket URL of the server, e.g. ws://127.0.0.1:41234/ws.
func (s *Server) URL() string {
	if s.clientTLS != nil {
		return "wss://" + s.addr + s.helper.Path()
	}
	return "ws://" + s.addr + s.helper.Path()
}

// HTTPURL is the server's HTTP base URL, e.g. http://127.0.0.1:41234.
func (s *Server) HTTPURL() string {
	if s.clientTLS != nil {
		return "https://" + s.addr
	}
	return "http://" + s.addr
}

// ClientTLS is a TLS config that trusts the certificate of a server of
// StartTLS (a copy each call), for clients of the test's own; nil for a
// plain server.
func (s *Server) ClientTLS() *tls.Config {
	if s.clientTLS == nil {
		return nil
	}
	return s.clientTLS.Clone()
}

// Addr is the server's host:port.
func (s *Server) Addr() string { return s.addr }

// Helper is the app's server helper, to send from a test or look at clients.
func (s *Server) Helper() *helper.WebSocketServerHelper { return s.helper }

// WaitJoined waits until the client with id is a member of every room in
// rooms on this instance, and the instance's broker holds their channels,
// so that a send to those rooms from any instance reaches it. The
// protocol's join has no answer, so a test that has a client join and
// then sends to the room needs this wait. It gives up with ctx, or after
// DefaultTimeout when ctx has no deadline, saying which rooms are missing
// (a validate-room handler that refused them, for one). While Redis is
// away the broker cannot subscribe: WaitJoined then returns once the
// subscriptions are owed, and they are made when Redis is back. It looks
// at the rooms as they are: a client that joined, left and joined again
// may be seen in the room before its last leave is handled; Client.Sync
// first waits for all it sent.
func (s *Server) WaitJoined(ctx context.Context, id string, rooms ...string) error {
	return s.waitRooms(ctx, id, rooms, true)
}

// WaitLeft waits until the client with id is in none of rooms on this
// instance (or has left the instance), and the broker has dropped the
// channels no local member needs any more. It gives up as WaitJoined does.
func (s *Server) WaitLeft(ctx context.Context, id string, rooms ...string) error {
	return s.waitRooms(ctx, id, rooms, false)
}

// waitRooms polls until the client is in every room (in) or in none of
// them, then waits for the broker to catch up.
func (s *Server) waitRooms(ctx context.Context, id string, rooms []string, in bool) error {
	ctx, cancel := withDefault(ctx)
	defer cancel()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		var wrong []string // rooms not yet as wanted
		view, here := s.helper.GetClient(id)
		for _, r := range rooms {
			if here && slices.Contains(view.Rooms, r) != in || !here && in {
				wrong = append(wrong, r)
			}
		}
		if len(wrong) == 0 {
			return s.helper.SyncSubscriptions(ctx)
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			switch {
			case !in:
				return fmt.Errorf("fxtest: client %s is still in %v: %w", id, wrong, ctx.Err())
			case !here:
				return fmt.Errorf("fxtest: client %s is not on this instance: %w", id, ctx.Err())
			}
			return fmt.Errorf("fxtest: client %s has not joined %v: %w", id, wrong, ctx.Err())
		}
	}
}

// App is the fx app.
func (s *Server) App() *fx.App { return s.app }

// Stop stops the app (every client gets 1001) within StartTimeout. It is
// idempotent and returns the first call's error.
func (s *Server) Stop() error {
	s.stopOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), StartTimeout)
		defer cancel()
		s.stopErr = s.app.Stop(ctx)
	})
	return s.stopErr
}

// Dial connects a protocol client to the server, failing tb on error; the
// client is closed when the test ends.
func (s *Server) Dial(tb testing.TB) *Client {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), DefaultTimeout)
	defer cancel()
	c, err := DialWith(ctx, s.URL(), DialOptions{TLS: s.ClientTLS()})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = c.Abort() })
	return c
}

// Connect dials and authenticates with data, failing tb unless the server
// answers `connected`; it returns the client and the connected data's id.
func (s *Server) Connect(tb testing.TB, data any) (*Client, string) {
	tb.Helper()
	c := s.Dial(tb)
	ctx, cancel := context.WithTimeout(context.Background(), DefaultTimeout)
	defer cancel()
	cd, err := c.Authenticate(ctx, data)
	if err != nil {
		tb.Fatal(errors.Join(errors.New("fxtest: connect"), err))
	}
	return c, cd.ID
}

// selfSignedTLS makes a certificate for 127.0.0.1 and localhost, and the
// configs of a server that presents it and of a client that trusts it.
func selfSignedTLS() (server, client *tls.Config, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "fxtest"},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	server = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}}}
	return server, &tls.Config{RootCAs: roots}, nil
}

// Package conformance is a black-box conformance suite for servers that
// follow /work/shared/demo-contract.md: it drives a running server from
// outside, over WebSocket (the Ignis wire protocol, through fxtest.Client)
// and the REST control API, and checks every observable behaviour against
// what the original (Ignis WebSocketServerHelper on Bun) does.
//
// The expectations are the original's, verified against it, except for the
// rows of the "Deliberate differences" table of spec.md: those tests assert
// the spec's behaviour for our server and skip the assertion (with a note)
// when the implementation under test is the original.
//
// Target selection (environment):
//
//	CONFORMANCE_URL   http://host:port of an already running server; empty:
//	                  the suite builds ./examples/demo and runs it itself on a
//	                  free port with the timers below (no Redis).
//	CONFORMANCE_IMPL  "ignis" or "fxws" (default fxws): which implementation
//	                  is under test, for the deliberate differences.
//	CONFORMANCE_WS_PATH            WebSocket path (default /ws)
//	CONFORMANCE_AUTH_TIMEOUT_MS    the server's AUTH_TIMEOUT_MS       (default 1000)
//	CONFORMANCE_HEARTBEAT_INTERVAL_MS  HEARTBEAT_INTERVAL_MS          (default 250)
//	CONFORMANCE_HEARTBEAT_TIMEOUT_MS   HEARTBEAT_TIMEOUT_MS           (default 2000)
//	CONFORMANCE_MAX_PAYLOAD_LENGTH     MAX_PAYLOAD_LENGTH             (default 131072)
//	CONFORMANCE_SERVER_CMD  a command (run by sh -c) that starts a fresh
//	                  instance of the implementation; the suite sets PORT,
//	                  HOST and the timers above in its environment. Tests that
//	                  need a dedicated instance (SIGTERM) use it; with no
//	                  CONFORMANCE_URL it defaults to the built demo, otherwise
//	                  those tests are skipped when it is unset.
//
// The timers of an external server must match the CONFORMANCE_* values:
// `make conformance` starts the original and our demo with the same settings
// and runs the suite against each.
package conformance

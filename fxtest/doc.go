// Package fxtest is the test kit of fxws: a protocol client that speaks the
// Ignis WebSocket protocol to any server (Dial, Authenticate, Join, Emit,
// Expect, ExpectClose, raw frames for negative tests), and helpers that start
// an fx application with websocket.Module on an ephemeral port, on the
// in-process broker or on a real Redis, which StartRedis runs for the test
// (and can kill and restart, to see the app through an outage), or a Redis
// Cluster (StartRedisCluster).
package fxtest

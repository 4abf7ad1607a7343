package main

import (
	"bytes"
	"encoding/binary"
	"reflect"
	"testing"
)

// pcapOf builds a capture of lo: (microseconds, source port, destination
// port, payload bytes) per packet.
func pcapOf(packets [][4]int) []byte {
	var b bytes.Buffer
	le := binary.LittleEndian
	gh := make([]byte, 24)
	le.PutUint32(gh[0:], 0xa1b2c3d4)
	le.PutUint32(gh[16:], 200)
	le.PutUint32(gh[20:], 1)
	b.Write(gh)
	for _, p := range packets {
		pkt := make([]byte, 14+20+20+p[3])
		ip := pkt[14:]
		ip[0] = 0x45
		binary.BigEndian.PutUint16(ip[2:], uint16(20+20+p[3]))
		ip[9] = 6
		tcp := ip[20:]
		binary.BigEndian.PutUint16(tcp[0:], uint16(p[1]))
		binary.BigEndian.PutUint16(tcp[2:], uint16(p[2]))
		tcp[12] = 5 << 4
		rh := make([]byte, 16)
		le.PutUint32(rh[0:], uint32(p[0]/1e6))
		le.PutUint32(rh[4:], uint32(p[0]%1e6))
		le.PutUint32(rh[8:], uint32(len(pkt)))
		le.PutUint32(rh[12:], uint32(len(pkt)))
		b.Write(rh)
		b.Write(pkt)
	}
	return b.Bytes()
}

// A request is timed from its last packet carrying more than a frame
// header to the server's next packet for that client; other clients'
// packets, bare ACKs and pushes with no request pending are ignored.
func TestWireRoundTrips(t *testing.T) {
	const server, c1, c2, other = 8080, 40001, 40002, 40003
	capture := pcapOf([][4]int{
		{1_000_000, c1, server, 6},     // header
		{1_000_100, c1, server, 38},    // payload: the request is complete
		{1_000_150, server, c1, 0},     // ACK
		{1_000_600, server, c1, 40},    // answer: 0.5 ms
		{1_001_000, other, server, 38}, // not a healthy client
		{1_002_000, c2, server, 38},
		{1_003_000, server, other, 40},
		{1_004_500, server, c2, 40}, // 2.5 ms
		{1_005_000, server, c2, 40}, // nothing pending: a server push
		{1_006_000, c1, server, 20}, // a request in two pieces
		{1_006_200, c1, server, 24}, // complete here
		{1_007_200, server, c1, 40}, // 1 ms
	})
	got, err := wireRoundTrips(bytes.NewReader(capture), server, map[uint16]bool{c1: true, c2: true})
	if err != nil {
		t.Fatal(err)
	}
	if want := []float64{0.5, 2.5, 1}; !reflect.DeepEqual(roundAll(got), want) {
		t.Fatalf("round trips %v ms, want %v", got, want)
	}
}

func roundAll(v []float64) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = round2(x)
	}
	return out
}

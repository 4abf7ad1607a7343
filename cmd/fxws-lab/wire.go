package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"time"
)

// Wire latency: the healthy clients' round trips as the loopback device
// saw them, from the packet that completes a request to the packet that
// carries the answer. Both timestamps are taken by the kernel as each
// packet is sent, so the span is the server's part of the round trip:
// delivery to its socket, waking, handling, answering. What the clients'
// own scheduling adds is left out. On this 2-core machine the clients share
// a core with the attackers, and the client side's waits dominated the
// round trips measured by the clients under attack (see docs/hardening.md).
//
// It needs tcpdump and the right to capture on lo; without either, the
// scenario fails with tcpdump's own message.

// captureWire captures span of the demo's small packets on lo and
// summarises the round trips of the clients whose local ports are given.
func captureWire(ctx context.Context, port int, span time.Duration, dir string, ports map[uint16]bool) (map[string]any, error) {
	f, err := os.CreateTemp(dir, "wire-*.pcap")
	if err != nil {
		return nil, err
	}
	name := f.Name()
	f.Close()
	defer os.Remove(name)
	cctx, cancel := context.WithTimeout(ctx, span)
	defer cancel()
	// Healthy requests and answers are under 100 bytes; "less 400" keeps
	// the attackers' large frames out of the capture.
	cmd := exec.CommandContext(cctx, "tcpdump", "-i", "lo", "-s", "200", "-B", "131072", "-U", "-w", name,
		fmt.Sprintf("tcp port %d and less 400", port))
	out, err := cmd.CombinedOutput()
	if cctx.Err() == nil {
		// tcpdump ended before the span: it could not capture.
		return nil, fmt.Errorf("lab: -wire: tcpdump: %v: %s", err, out)
	}
	r, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	lat, err := wireRoundTrips(bufio.NewReader(r), uint16(port), ports)
	if err != nil {
		return nil, err
	}
	if len(lat) == 0 {
		return nil, errors.New("lab: -wire: no round trips captured")
	}
	slices.Sort(lat)
	q := func(p float64) float64 { return round2(lat[int(p*float64(len(lat)-1))]) }
	return map[string]any{"round_trips": len(lat), "p50_ms": q(0.5), "p90_ms": q(0.9), "p99_ms": q(0.99), "max_ms": q(1)}, nil
}

// wireRoundTrips reads a pcap of lo (Ethernet framing) and pairs, per client
// port, a request with the server's next packet to that client, in
// milliseconds. A client writes a frame's header and its payload
// separately, and a request may come in more pieces still: the request is
// complete with the last packet carrying more than a header before the
// answer. The healthy clients send one request per 100 ms and wait for
// nothing, so an answer slower than that would be paired with the next
// request; under every load measured the slowest took a few ms.
func wireRoundTrips(r io.Reader, server uint16, clients map[uint16]bool) ([]float64, error) {
	var gh [24]byte
	if _, err := io.ReadFull(r, gh[:]); err != nil {
		return nil, fmt.Errorf("pcap header: %w", err)
	}
	var div float64
	switch binary.LittleEndian.Uint32(gh[:4]) {
	case 0xa1b2c3d4:
		div = 1e6
	case 0xa1b23c4d:
		div = 1e9
	default:
		return nil, errors.New("pcap: not a little-endian capture file")
	}
	if lt := binary.LittleEndian.Uint32(gh[20:]); lt != 1 {
		return nil, fmt.Errorf("pcap: link type %d, want Ethernet (1)", lt)
	}
	pending := map[uint16]float64{}
	var lat []float64
	var rh [16]byte
	buf := make([]byte, 65536)
	for {
		if _, err := io.ReadFull(r, rh[:]); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return lat, nil // a capture cut short ends mid-record
			}
			return nil, err
		}
		t := float64(binary.LittleEndian.Uint32(rh[0:])) + float64(binary.LittleEndian.Uint32(rh[4:]))/div
		n := int(binary.LittleEndian.Uint32(rh[8:]))
		if n > len(buf) {
			return nil, fmt.Errorf("pcap: record of %d bytes", n)
		}
		if _, err := io.ReadFull(r, buf[:n]); err != nil {
			return lat, nil
		}
		src, dst, payload, ok := tcpSegment(buf[:n])
		if !ok || payload == 0 {
			continue
		}
		switch {
		case dst == server && clients[src] && payload > wsClientHeader:
			pending[src] = t
		case src == server && clients[dst]:
			if t0, ok := pending[dst]; ok {
				lat = append(lat, (t-t0)*1e3)
				delete(pending, dst)
			}
		}
	}
}

// wsClientHeader is the header of a masked client frame under 126 bytes.
const wsClientHeader = 6

// tcpSegment reads the ports and the payload length of an IPv4 TCP packet
// behind an Ethernet header.
func tcpSegment(p []byte) (src, dst uint16, payload int, ok bool) {
	if len(p) < 14+20 || p[14]>>4 != 4 {
		return 0, 0, 0, false
	}
	ip := p[14:]
	ihl := int(ip[0]&15) * 4
	total := int(binary.BigEndian.Uint16(ip[2:]))
	if ip[9] != 6 || len(ip) < ihl+20 {
		return 0, 0, 0, false
	}
	tcp := ip[ihl:]
	off := int(tcp[12]>>4) * 4
	return binary.BigEndian.Uint16(tcp[0:]), binary.BigEndian.Uint16(tcp[2:]), total - ihl - off, true
}

package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestReportMediansAndRatios(t *testing.T) {
	var rs []*result
	for i, v := range []float64{4, 5, 9} {
		rs = append(rs,
			&result{Scenario: "broadcast", Case: "bcast-1k", Label: "original", Rep: i + 1, CPUPerMsgUs: v, LatP50: 2, LatP99: 5, DeliveredPerS: 1000},
			&result{Scenario: "broadcast", Case: "bcast-1k", Label: "ours", Rep: i + 1, CPUPerMsgUs: v / 2, LatP50: 1, LatP99: 5, DeliveredPerS: 1000, Missing: int64(i)},
		)
	}
	var out bytes.Buffer
	if err := writeReport(&out, rs, "original", "ours"); err != nil {
		t.Fatal(err)
	}
	s := out.String()
	for _, want := range []string{
		"| bcast-1k | server CPU per delivered message, µs | 5.00 (4.00–9.00, n=3) | 2.50 (2.00–4.50, n=3) | 0.50 | 0.50, 0.50, 0.50 |",
		"| bcast-1k | latency p50, ms | 2.00 (2.00–2.00, n=3) | 1.00 (1.00–1.00, n=3) | 0.50 |",
		"| delivered messages/s | 1000 (1000–1000, n=3) | 1000 (1000–1000, n=3) | 1.00 (higher is better) |",
		"- bcast-1k, ours, run 3: 2 missing",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("report lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "run 1: ") {
		t.Errorf("a clean run was reported as irregular:\n%s", s)
	}
}

func TestReportGroupsRepeatedIrregularities(t *testing.T) {
	rs := []*result{
		{Scenario: "encrypted", Case: "enc", Label: "original", Rep: 1, Notes: []string{"opaque"}},
		{Scenario: "encrypted", Case: "enc", Label: "original", Rep: 2, Notes: []string{"opaque"}},
	}
	var out bytes.Buffer
	if err := writeReport(&out, rs, "original", "ours"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "- enc, original, runs 1, 2: opaque\n") {
		t.Errorf("repeated note not grouped:\n%s", out.String())
	}
}

func TestReportNeedsResults(t *testing.T) {
	if err := writeReport(&bytes.Buffer{}, nil, "a", "b"); err == nil {
		t.Fatal("empty input gave no error")
	}
}

package bounded

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestRunReturnsTheResult(t *testing.T) {
	r := New(1)
	want := errors.New("boom")
	if err := r.Run(context.Background(), func(context.Context) error { return want }); err != want {
		t.Fatalf("Run = %v, want %v", err, want)
	}
	if n := r.Running(); n != 0 {
		t.Fatalf("Running after the command ended = %d", n)
	}
}

// A command that outlives its caller's context does not hold the caller,
// keeps its slot until it ends, and the cap makes the next caller wait for
// that slot only within its own context.
func TestAbandonedCommandHoldsItsSlot(t *testing.T) {
	r := New(1)
	release := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- r.Run(ctx, func(context.Context) error { <-release; return nil }) }()
	for r.Running() != 1 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("abandoned Run = %v, want context.Canceled", err)
	}
	short, stop := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer stop()
	ran := false
	err := r.Run(short, func(context.Context) error { ran = true; return nil })
	if !errors.Is(err, context.DeadlineExceeded) || ran {
		t.Fatalf("Run past the cap = %v (ran %v), want DeadlineExceeded without running", err, ran)
	}
	close(release)
	for r.Running() != 0 {
		time.Sleep(time.Millisecond)
	}
	if err := r.Run(context.Background(), func(context.Context) error { return nil }); err != nil {
		t.Fatalf("Run once the slot is free = %v", err)
	}
}

// Retry tries again until f succeeds, stops at once on a final error, and
// otherwise gives up with the last failure seen before its wait ran out,
// ending ahead of its context's deadline.
func TestRetry(t *testing.T) {
	r := New(2)
	ctx := context.Background()
	down := errors.New("connection refused")
	n := 0
	if err := r.Retry(ctx, time.Second, 0, func(context.Context) error {
		if n++; n < 3 {
			return down
		}
		return nil
	}, nil); err != nil || n != 3 {
		t.Fatalf("Retry = %v after %d tries, want nil after 3", err, n)
	}
	denied := errors.New("NOAUTH")
	n = 0
	err := r.Retry(ctx, time.Second, 0, func(context.Context) error { n++; return denied },
		func(err error) bool { return err == denied })
	if err != denied || n != 1 {
		t.Fatalf("Retry = %v after %d tries, want the final error at once", err, n)
	}
	dctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	start := time.Now()
	err = r.Retry(dctx, time.Minute, 0, func(ctx context.Context) error { return down }, nil)
	var gaveUp *GaveUp
	if !errors.As(err, &gaveUp) || gaveUp.Last != down {
		t.Fatalf("Retry = %v, want a GaveUp with the last failure", err)
	}
	if dctx.Err() != nil || gaveUp.Wait >= time.Second || time.Since(start) >= time.Second {
		t.Fatalf("gave up after %v (wait %v): not ahead of the context's deadline", time.Since(start), gaveUp.Wait)
	}
}

func TestAhead(t *testing.T) {
	for _, tc := range []struct{ left, want time.Duration }{
		{2 * time.Second, 200 * time.Millisecond},
		{20 * time.Second, time.Second},
		{0, 0},
	} {
		d := time.Now().Add(tc.left)
		ctx, cancel := context.WithDeadline(context.Background(), d)
		early, cancelEarly := Ahead(ctx)
		got, _ := early.Deadline()
		cancelEarly()
		cancel()
		// Margin is taken from what is left when Ahead runs, a moment
		// after d was set.
		if diff := d.Sub(got) - tc.want; diff < -10*time.Millisecond || diff > 10*time.Millisecond {
			t.Errorf("left %v: deadline brought forward by %v, want %v", tc.left, d.Sub(got), tc.want)
		}
	}
	early, cancel := Ahead(context.Background())
	defer cancel()
	if _, ok := early.Deadline(); ok {
		t.Error("a deadline appeared from none")
	}
}

// RunLeaving says when it gave up on a command still running, and when
// that command ends; nil when the command ended in time.
func TestRunLeavingSaysWhatItLeft(t *testing.T) {
	r := New(4)
	left, err := r.RunLeaving(context.Background(), func(context.Context) error { return nil })
	if left != nil || err != nil {
		t.Fatalf("a command that ended: %v %v", left, err)
	}
	release := make(chan struct{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	left, err = r.RunLeaving(ctx, func(context.Context) error { <-release; return nil })
	if left == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a command given up on: %v %v", left, err)
	}
	select {
	case <-left:
		t.Fatal("left closed while the command still runs")
	default:
	}
	close(release)
	select {
	case <-left:
	case <-time.After(5 * time.Second):
		t.Fatal("left not closed once the command ended")
	}
}

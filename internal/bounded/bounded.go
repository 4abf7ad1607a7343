// Package bounded runs Redis commands so that the caller's deadline holds
// whatever the client's options say.
//
// go-redis heeds a context's deadline during I/O only for clients made with
// ContextTimeoutEnabled; with any other client, a command sent to a Redis
// that stopped answering (a partition, a frozen host) waits out the
// client's ReadTimeout and its retries, or for ever with ReadTimeout -1.
// The library never owns the client, so it cannot choose those options.
package bounded

import (
	"context"
	"fmt"
	"time"
)

// Runner runs commands on goroutines of their own, at most a fixed number
// at once. A command whose caller has given up goes on until the client's
// own timeouts (or its Close) end it, and holds its slot until then, so a
// silent Redis cannot pile up goroutines without limit.
type Runner struct {
	slots chan struct{}
}

// New returns a Runner that runs at most max commands at once.
func New(max int) *Runner {
	return &Runner{slots: make(chan struct{}, max)}
}

// Run runs f and returns its result, or ctx's error as soon as ctx ends,
// whichever comes first. Past the cap, it waits for a slot within ctx.
func (r *Runner) Run(ctx context.Context, f func(context.Context) error) error {
	_, err := r.RunLeaving(ctx, f)
	return err
}

// RunLeaving is Run that also says when it returned before f did (ctx
// ended): left is then closed once f has returned, and nil otherwise. A
// caller whose next command must not overtake the one it gave up on (a
// publish that may still reach Redis) waits for it.
func (r *Runner) RunLeaving(ctx context.Context, f func(context.Context) error) (left <-chan struct{}, err error) {
	select {
	case r.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	res := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		err := f(ctx)
		<-r.slots // before the result: Running no longer counts it then
		res <- err
	}()
	select {
	case err := <-res:
		return nil, err
	case <-ctx.Done():
		select {
		case err := <-res: // f was done too
			return nil, err
		default:
		}
		return done, ctx.Err()
	}
}

// Running returns the number of commands running now, abandoned ones
// included.
func (r *Runner) Running() int { return len(r.slots) }

// GaveUp is Retry's error when its wait ran out: how long it waited, and
// the last failure it saw.
type GaveUp struct {
	Wait time.Duration
	Last error
}

func (e *GaveUp) Error() string { return fmt.Sprintf("gave up after %v: %v", e.Wait, e.Last) }

func (e *GaveUp) Unwrap() error { return e.Last }

// Retry runs f until it succeeds, final(err) says waiting will not change
// the failure (nil: never), or wait has passed, pausing 50 ms, doubling to
// 1 s, between tries; each try is bounded by try as well (0: by the wait
// alone). It is how a start step waits for a Redis still coming up. When
// ctx has a deadline (an app's start timeout), the wait ends a tenth of
// what is left before it (1 s at most), so that the step's own error, not
// only "deadline exceeded", reaches whoever started it. It returns nil, the
// final error as it is, or a *GaveUp.
func (r *Runner) Retry(ctx context.Context, wait, try time.Duration, f func(context.Context) error, final func(error) bool) error {
	if d, ok := ctx.Deadline(); ok {
		left := time.Until(d)
		wait = max(min(wait, left-Margin(left)), 0)
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	backoff := 50 * time.Millisecond
	var last error
	for {
		tctx, tcancel := ctx, context.CancelFunc(func() {})
		if try > 0 {
			tctx, tcancel = context.WithTimeout(ctx, try)
		}
		err := r.Run(tctx, f)
		tcancel()
		if err == nil {
			return nil
		}
		if final != nil && final(err) {
			return err
		}
		// A try cut short by the end of the whole wait says nothing
		// about what it waits for; keep the failure before it.
		if ctx.Err() == nil || last == nil {
			last = err
		}
		select {
		case <-ctx.Done():
			return &GaveUp{Wait: wait, Last: last}
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}

// Margin is how long before a deadline that is left away a lifecycle step
// stops waiting, so that its own error, not only "deadline exceeded",
// reaches whoever gave the deadline: fx returns from a start or stop as
// its context ends, without the hook's answer. A tenth of what is left,
// 1 s at most.
func Margin(left time.Duration) time.Duration {
	return max(min(left/10, time.Second), 0)
}

// Ahead returns ctx with its deadline, if it has one, brought forward by
// Margin.
func Ahead(ctx context.Context) (context.Context, context.CancelFunc) {
	d, ok := ctx.Deadline()
	if !ok {
		return context.WithCancel(ctx)
	}
	return context.WithDeadline(ctx, d.Add(-Margin(time.Until(d))))
}

// Package bounded runs Redis commands so that the caller's deadline holds
// whatever the client's options say.
//
// go-redis heeds a context's deadline during I/O only for clients made with
// ContextTimeoutEnabled; with any other client, a command sent to a Redis
// that stopped answering (a partition, a frozen host) waits out the
// client's ReadTimeout and its retries, or for ever with ReadTimeout -1.
// The library never owns the client, so it cannot choose those options.
package bounded

import "context"

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
	select {
	case r.slots <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	res := make(chan error, 1)
	go func() {
		err := f(ctx)
		<-r.slots // before the result: Running no longer counts it then
		res <- err
	}()
	select {
	case err := <-res:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Running returns the number of commands running now, abandoned ones
// included.
func (r *Runner) Running() int { return len(r.slots) }

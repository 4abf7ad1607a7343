package publishonce

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"

	"github.com/redis/go-redis/v9"
)

// fake fails its first calls with errs, then answers 1 subscriber.
type fake struct {
	errs  []error
	calls int
	retry []bool // NoRetry of each command given
}

func (f *fake) Process(_ context.Context, c redis.Cmder) error {
	f.calls++
	f.retry = append(f.retry, c.NoRetry())
	if len(f.errs) > 0 {
		err := f.errs[0]
		f.errs = f.errs[1:]
		c.SetErr(err)
		return err
	}
	c.(interface{ SetVal(int64) }).SetVal(1)
	return nil
}

// A publish whose fate is unknown (a reply cut off) is not sent again;
// one that cannot have been sent (a failed dial) is, MaxRetries times;
// go-redis is told not to send any twice.
func TestPublishRetriesOnlyWhatWasNeverSent(t *testing.T) {
	ctx := context.Background()
	dial := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}

	f := &fake{errs: []error{io.EOF}}
	if _, err := Publish(ctx, f, false, "ch", "x"); !errors.Is(err, io.EOF) || f.calls != 1 {
		t.Fatalf("reply lost: %v after %d calls, want EOF after 1", err, f.calls)
	}
	f = &fake{errs: []error{dial, dial}}
	if n, err := Publish(ctx, f, false, "ch", "x"); err != nil || n != 1 || f.calls != 3 {
		t.Fatalf("two failed dials: %d, %v after %d calls, want 1 subscriber after 3", n, err, f.calls)
	}
	f = &fake{errs: []error{dial, dial, dial, dial, dial}}
	if _, err := Publish(ctx, f, true, "ch", "x"); err == nil || f.calls != 4 {
		t.Fatalf("dials failing: %v after %d calls, want the error after 4 (MaxRetries 3)", err, f.calls)
	}
	for i, r := range f.retry {
		if !r {
			t.Fatalf("command %d given to go-redis with NoRetry false", i)
		}
	}
}

//go:build !linux || 386

package helper

import "errors"

// poller is Linux-only; elsewhere every connection is read by a goroutine
// of its own.
type poller struct{}

func newPoller() (*poller, error) { return nil, errors.New("websocket: no poller on this platform") }

func (*poller) run()              {}
func (*poller) arm(*client) error { return errors.New("websocket: no poller") }
func (*poller) forget(*client)    {}
func (*poller) pollNow(int64)     {}
func (*poller) close()            {}

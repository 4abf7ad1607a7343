package component_test

import (
	"context"
	"fmt"

	"github.com/fxws/websocket/component"
)

// An app that listens itself (to pass the listener to websocket.WithListener,
// or to serve the helper from an http.Server of its own) gets the module's
// deferred accept with the same call.
func ExampleListenConfig() {
	lc := component.ListenConfig(component.DefaultReadHeaderTimeout)
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer ln.Close()
	fmt.Println(ln.Addr().Network())
	// Output: tcp
}

package emitter_test

import (
	"fmt"

	"github.com/fxws/websocket/emitter"
	"github.com/fxws/websocket/protocol"
)

// The envelope ToRoom publishes on ws:room:jobs: what every server
// instance (ours or the original) reads from Redis and delivers to the
// room's members, except the clients in exclude.
func ExampleEncode() {
	env, err := emitter.Encode(protocol.TypeRoom, "jobs", "progress", map[string]int{"pct": 40}, []string{"client-7"})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(protocol.RoomChannel("jobs"))
	fmt.Println(string(env))
	// Output:
	// ws:room:jobs
	// {"serverId":"emitter","type":"room","target":"jobs","event":"progress","data":{"pct":40},"exclude":["client-7"]}
}

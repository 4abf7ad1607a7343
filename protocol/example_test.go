package protocol_test

import (
	"encoding/json"
	"fmt"

	"github.com/fxws/websocket/protocol"
)

// Splitting an inbound message into the members the protocol reads, without
// decoding the data.
func ExampleObjectMembers() {
	msg := []byte(`{"event":"chat","data":{"text":"hi","to":["room-1"]},"id":"m1"}`)
	var event, data, id json.RawMessage
	err := protocol.ObjectMembers(msg, func(key []byte, value json.RawMessage) {
		switch string(key) {
		case "event":
			event = value
		case "data":
			data = value
		case "id":
			id = value
		}
	})
	if err != nil {
		fmt.Println("invalid:", err)
		return
	}
	name, _ := protocol.StringValue(event)
	msgID, _ := protocol.StringValue(id)
	fmt.Println(name, msgID, string(data))

	err = protocol.ObjectMembers([]byte(`{"event":"chat",}`), func([]byte, json.RawMessage) {})
	fmt.Println(err != nil)
	// Output:
	// chat m1 {"text":"hi","to":["room-1"]}
	// true
}

func ExampleAppendEnvelope() {
	env := protocol.Envelope{ServerID: "s1", Type: protocol.TypeRoom, Target: "lobby", Event: "chat", Data: json.RawMessage(`{"text":"hi"}`)}
	fmt.Println(string(protocol.AppendEnvelope(nil, &env)))
	// Output:
	// {"serverId":"s1","type":"room","target":"lobby","event":"chat","data":{"text":"hi"}}
}

package emitter

import (
	"context"
	"errors"
	"fmt"

	"github.com/fxws/websocket/protocol"
)

// DisconnectClient closes one client, on whichever instance of this
// library holds it (an extension: one session per device, from a worker
// that keeps each device's client id), with code and reason in the close
// frame. Instances of the original ignore it.
func (e *WebSocketEmitter) DisconnectClient(ctx context.Context, clientID string, code int, reason string) error {
	if clientID == "" {
		return errors.New("emitter: DisconnectClient: empty client id")
	}
	if !protocol.ValidCloseCode(code) {
		return fmt.Errorf("emitter: DisconnectClient: %w: %d is not a close code an endpoint may send", protocol.ErrInvalidCloseCode, code)
	}
	return e.publish(ctx, protocol.TypeDisconnectClient, clientID, protocol.EventDisconnect,
		protocol.DisconnectData{Code: code, Reason: reason}, nil)
}

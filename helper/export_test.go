package helper

import (
	"net"
	"time"
)

// DirectUpgrades says whether Serve answers upgrades directly here.
const DirectUpgrades = directUpgrades

// UpgradeListener is the listener Serve serves srv on, for servers the
// tests start themselves (httptest).
func (h *WebSocketServerHelper) UpgradeListener(ln net.Listener) net.Listener {
	return h.upgradeListener(ln)
}

// PendingSubscriptionChanges is the number of channel changes the helper
// holds for the broker and has not applied yet.
func (h *WebSocketServerHelper) PendingSubscriptionChanges() int {
	h.subs.mu.Lock()
	defer h.subs.mu.Unlock()
	return len(h.subs.dirty)
}

// SetConnectedCallbackWarnAfter shortens the wait before the warning of a
// connected callback that holds a disconnect callback; the returned
// function restores it.
func SetConnectedCallbackWarnAfter(d time.Duration) (restore func()) {
	old := connectedCallbackWarnAfter
	connectedCallbackWarnAfter = d
	return func() { connectedCallbackWarnAfter = old }
}

// RoomsChangedLogs is the number of clients the rooms-changed log holds
// an entry for (Options.RoomsChangedByServer): changes to tell, or a
// teller running; 0 without the option.
func (h *WebSocketServerHelper) RoomsChangedLogs() int {
	if h.reg.log == nil {
		return 0
	}
	return h.reg.log.pending()
}

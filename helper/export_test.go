package helper

import "net"

// DirectUpgrades says whether Serve answers upgrades directly here.
const DirectUpgrades = directUpgrades

// UpgradeListener is the listener Serve serves srv on, for servers the
// tests start themselves (httptest).
func (h *WebSocketServerHelper) UpgradeListener(ln net.Listener) net.Listener {
	return h.upgradeListener(ln)
}

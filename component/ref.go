package component

import (
	"sync/atomic"

	"github.com/fxws/websocket/helper"
)

// HelperRef gives handlers access to the helper they are part of. Handlers
// are dependencies of the helper, so their constructors cannot take the
// helper itself (fx would report a cycle); they take a *HelperRef instead,
// which the module provides and fills as soon as the helper is built, before
// any lifecycle hook runs. Callbacks run only after start, so inside them
// Helper never returns nil.
type HelperRef struct {
	h atomic.Pointer[helper.WebSocketServerHelper]
}

// NewHelperRef returns an empty reference; the module fills it.
func NewHelperRef() *HelperRef { return &HelperRef{} }

// Set fills the reference. The module does; a unit test of a handler, or
// an app that builds its helper with helper.New, does it itself.
func (r *HelperRef) Set(h *helper.WebSocketServerHelper) { r.h.Store(h) }

// Helper returns the helper, or nil before the module has built it.
func (r *HelperRef) Helper() *helper.WebSocketServerHelper { return r.h.Load() }

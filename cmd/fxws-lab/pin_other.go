//go:build !linux

package main

// pinSelf does nothing here: thread affinity is set on Linux only, where
// the lab's figures are taken (it pins the demo with taskset too).
func pinSelf(string) error { return nil }

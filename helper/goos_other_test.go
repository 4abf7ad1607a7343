//go:build !linux

package helper

const isLinux = false

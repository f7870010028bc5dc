//go:build !linux

package commands

func probePort(port int) error { return listenProbe(port) }

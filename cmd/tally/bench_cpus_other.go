//go:build !linux

package main

import "os/exec"

// cpuSplit is Linux only (sched_setaffinity).
type cpuSplit struct {
	nServer              int
	serverList, loadList string
}

func splitCPUs(int) (*cpuSplit, error) {
	return nil, usageError{"--server-cpus needs Linux (it pins processes to CPUs with sched_setaffinity)"}
}

func (c *cpuSplit) start(cmd *exec.Cmd) error { return cmd.Start() }
func (c *cpuSplit) pinSelf() error            { return nil }
func cpusAllowed(int) string                  { return "" }

//go:build linux

package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// cpuSplit gives the bench servers some of the CPUs this process may use
// and the load generator the others (--server-cpus), as if the clients ran
// on a machine of their own.
type cpuSplit struct {
	server, load unix.CPUSet
	nServer      int
	serverList   string // "0", "0-1"
	loadList     string
}

// splitCPUs takes the first n CPUs this process may run on for the
// servers and leaves the rest to the load generator.
func splitCPUs(n int) (*cpuSplit, error) {
	var all unix.CPUSet
	if err := unix.SchedGetaffinity(0, &all); err != nil {
		return nil, fmt.Errorf("--server-cpus: reading this process's CPUs: %w", err)
	}
	var cpus []int
	for i := 0; i < len(all)*64; i++ {
		if all.IsSet(i) {
			cpus = append(cpus, i)
		}
	}
	if n >= len(cpus) {
		return nil, usageError{fmt.Sprintf("--server-cpus %d leaves no CPU for the load generator: this process may use %d", n, len(cpus))}
	}
	c := &cpuSplit{nServer: n}
	var s, l []string
	for i, cpu := range cpus {
		if i < n {
			c.server.Set(cpu)
			s = append(s, strconv.Itoa(cpu))
		} else {
			c.load.Set(cpu)
			l = append(l, strconv.Itoa(cpu))
		}
	}
	c.serverList, c.loadList = strings.Join(s, ","), strings.Join(l, ",")
	return c, nil
}

// start starts cmd on the servers' CPUs with GOMAXPROCS set to match: the
// child is forked from this goroutine's thread, pinned for the moment, and
// inherits its affinity (and so do every thread and process it starts).
func (c *cpuSplit) start(cmd *exec.Cmd) error {
	cmd.Env = append(os.Environ(), "GOMAXPROCS="+strconv.Itoa(c.nServer))
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var was unix.CPUSet
	if err := unix.SchedGetaffinity(0, &was); err != nil {
		return err
	}
	if err := unix.SchedSetaffinity(0, &c.server); err != nil {
		return fmt.Errorf("--server-cpus: %w", err)
	}
	err := cmd.Start()
	if rerr := unix.SchedSetaffinity(0, &was); err == nil && rerr != nil {
		err = rerr
	}
	return err
}

// pinSelf moves every thread of this process (the load generator and the
// raw SQLite loops) to the load generator's CPUs; threads started later
// inherit it from their creators.
func (c *cpuSplit) pinSelf() error {
	runtime.GOMAXPROCS(c.load.Count())
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return err
	}
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		if err := unix.SchedSetaffinity(tid, &c.load); err != nil && err != unix.ESRCH {
			return fmt.Errorf("--server-cpus: %w", err)
		}
	}
	return nil
}

// cpusAllowed is the CPU list a process may run on, as the kernel says
// (/proc/PID/status, Cpus_allowed_list); "" if unknown.
func cpusAllowed(pid int) string {
	f, err := os.Open(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "Cpus_allowed_list:"); ok {
			return strings.TrimSpace(rest)
		}
	}
	return ""
}

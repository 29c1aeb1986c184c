//go:build unix

package jsstore_test

import (
	"syscall"
	"time"
)

// cpuTime is the CPU time (user and system) this process has used so far:
// the client and the embedded server together.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

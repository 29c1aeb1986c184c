//go:build !linux

package chaos

import "syscall"

// procAttr puts each service in its own process group (so a kill reaches
// only it).
func procAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }

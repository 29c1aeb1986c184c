package chaos

import "syscall"

// procAttr puts each service in its own process group (so a kill reaches
// only it) and has the kernel kill it if the test process dies first: a
// test killed by its timeout must not leave five services running.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

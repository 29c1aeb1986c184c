// Command natsd is the NATS JetStream server of the scale harness
// (cmd/closeloop/scale), run as a process of its own so that its memory is
// measured apart from the services'. It serves libs/natsembed on a store
// directory until SIGTERM or SIGINT.
//
//	natsd -dir DATA -port 4222 [-nosync] [-cpuprofile FILE]
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	"github.com/closeloop/closeloop/libs/natsembed"
)

func main() {
	dir := flag.String("dir", "", "JetStream store directory (required)")
	port := flag.Int("port", 4222, "client port on 127.0.0.1")
	noSync := flag.Bool("nosync", false, "do not sync every write (bulk loading)")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the server's whole run to this file")
	flag.Parse()
	if *dir == "" {
		fmt.Fprintln(os.Stderr, "natsd: -dir is required")
		os.Exit(2)
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "natsd:", err)
			os.Exit(1)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "natsd:", err)
			os.Exit(1)
		}
		defer f.Close()
		defer pprof.StopCPUProfile()
	}
	s, err := natsembed.Start(natsembed.Options{StoreDir: *dir, Port: *port, NoSync: *noSync})
	if err != nil {
		fmt.Fprintln(os.Stderr, "natsd:", err)
		os.Exit(1)
	}
	fmt.Fprintln(os.Stderr, "natsd: ready on", s.ClientURL())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	s.Shutdown()
}

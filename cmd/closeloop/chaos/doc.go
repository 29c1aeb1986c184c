// Package chaos is the fault-injection harness (its code is all in the
// tests). It runs the five service binaries and a NATS JetStream server as
// separate OS processes on a shared test clock (libs/clock/natsclock), drives
// a stream of scripted complaints through their whole life, kills the
// processes with SIGKILL at seeded random moments and restarts them, and then
// checks invariants over the event log: every acknowledged complaint exists
// once and reaches its script's end, no effect is recorded twice, every hash
// chain verifies, the dead-letter stream holds only the injected poison
// message, and no technician is ever over capacity.
//
//	go test ./cmd/closeloop/chaos/                      # short form (part of make test)
//	CHAOS_LONG=1 go test -timeout 60m ./cmd/closeloop/chaos/   # long form (make chaos)
//	go test ./cmd/closeloop/chaos/ -chaos.seed=N        # replay a run's schedule (or CHAOS_SEED=N)
package chaos

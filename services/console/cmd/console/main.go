// Command console runs the desk against an external NATS server (NATS_URL,
// default nats://127.0.0.1:4222; EVENTLOG_BACKEND and EVENTSTORE_URL choose
// where the event log is kept) until SIGINT or SIGTERM. Its own settings
// are listed in the service's README.
package main

import (
	"github.com/closeloop/closeloop/libs/esdb/backend"
	"github.com/closeloop/closeloop/libs/platform"
	"github.com/closeloop/closeloop/services/console"
)

func main() { platform.Main(console.Name, backend.Opener, console.FromEnv) }

// Command closeloopctl is the operators' and auditors' tool: a complaint's
// full history, its state as of any instant, hash-chain verification of one
// complaint or the whole log, JSON-lines export for an audit file, and the
// dead letters (list, inspect, replay after a fix).
//
// Exit codes: 0 success, 1 failure (connection, store), 2 usage, 3 the log
// failed verification, 4 no such complaint.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

const usage = `closeloopctl — replay, verify and operate Closeloop

Usage: closeloopctl [flags] <command> [arguments]

Commands:
  submit [--channel C] [--customer-name N] [--phone P] [--email E]
         [--product-model M] [--serial S] [--description D] [--received-at T]
         [--channel-ref R]          submit a test complaint through intake (an adapter's token):
                                    a new complaint each time; --channel-ref R with the same
                                    flags resends the report R names (same complaint)
  show <complaint-id>               the complaint as each service sees it (its own projection)
  seed-demo                         one on-shift member per team and a technician, for a fresh make run
  deadline [-calendar C] [-from T] -hours H | -days D
                                    sla-clock's calculator: the deadline H working hours or D working
                                    days after T (default now), the calendar version, provisional days
  calendars                         the calendars in use: versions, years covered, provisional entries
  calendar publish -file <year>.json
                                    publish one year of holidays (libs/calendar/data format; admin token)
  history <complaint-id>            the full timeline: time, service, actor, event, key fields
  as-of <complaint-id> <instant>    the complaint's state as recorded at an RFC 3339 instant
  verify <complaint-id> | --all     check the hash chain of one complaint or of the whole log,
                                    and each event's signature against the keyring (-signers)
  export <complaint-id>             the history as JSON lines, for an audit file
  deadletters list                  messages that failed every delivery, with their reasons
  deadletters show <seq>            one dead letter, decoded
  deadletters replay <seq>          hand a dead letter back to its consumer after a fix
  anchor [--once] [--every D] [--replicas N]
                                    anchor the log's head in ANCHORS (as admin; where no runner
                                    does it, e.g. a cluster; -timeout 0 to keep running); exit 3 if
                                    the log lost anchored events
  signing-keys -out <dir> [-unsigned-until N]
                                    a deployment's event-signing keys: one per writing service
                                    (<dir>/<service>.key, 0600) and the keyring <dir>/signers.json;
                                    keeps existing keys, adds missing ones (rotate: delete a key
                                    file, rerun); N: a log that already holds events, its last
                                    position (nats stream info EVENTS)
  migrate-subjects --writers-stopped [--replicas N]
                                    move a log of the old layout (a subject per event type) to
                                    one subject per entity stream, keeping every position; stop
                                    every writer first, give a long -timeout for a large log
  migrate-pii-keys --intake-stopped [--replicas N] [--recovery-file F]
                                    keep the customers' data keys of a PII_KEYS bucket from before
                                    secure erasure: wrap them with the KEK (PII_KEK, PII_KEK_FILE or
                                    <data>/secrets/PII_KEK) into F (default <data>/PII_KEYS.recovery),
                                    delete the old bucket, store them in a new one; rerun to resume

Flags:
`

// Exit codes.
const (
	exitOK       = 0
	exitFailure  = 1
	exitUsage    = 2
	exitBroken   = 3
	exitNotFound = 4
)

// exitError carries an exit code with its message.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func usageErr(format string, a ...any) error {
	return &exitError{exitUsage, fmt.Errorf(format, a...)}
}

type options struct {
	natsURL string
	// natsUser is the NATS identity; its password comes from
	// $NATS_PASSWORD or the data directory the runner generated it into.
	natsUser string
	dataDir  string
	api      string
	token    string
	output   string
	timeout  time.Duration
	// signers is the keyring file verify checks signatures with ("": the
	// data directory's, when there is one).
	signers string
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("closeloopctl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.StringVar(&o.natsURL, "nats", envOr("NATS_URL", "nats://127.0.0.1:4222"), "NATS server URL (env NATS_URL)")
	fs.StringVar(&o.natsUser, "user", envOr("NATS_USER", "ops"), "NATS identity: ops (read-only) or admin (dead-letter replay) (env NATS_USER)")
	fs.StringVar(&o.dataDir, "data", envOr("CLOSELOOP_DATA", "data"), "data directory of `make run`, whose secrets hold the NATS passwords; $NATS_PASSWORD wins (env CLOSELOOP_DATA)")
	fs.StringVar(&o.signers, "signers", os.Getenv("CLOSELOOP_SIGNERS_FILE"), "keyring (JSON) verify checks event signatures with; default <data>/secrets/signing/signers.json when it exists (env CLOSELOOP_SIGNERS_FILE)")
	fs.StringVar(&o.api, "api", envOr("CLOSELOOP_API", "http://127.0.0.1"), "where the services' HTTP faces are: host, host:port or http(s)://host[:port]; ports 8001–8005 unless a port outside them names intake's, the others following (env CLOSELOOP_API)")
	fs.StringVar(&o.token, "token", os.Getenv("CLOSELOOP_TOKEN"), "bearer token for the services' APIs (env CLOSELOOP_TOKEN)")
	fs.StringVar(&o.output, "o", "text", "output format: text or json")
	fs.DurationVar(&o.timeout, "timeout", 2*time.Minute, "give up after this long (0: never, for a long-running anchor)")
	fs.Usage = func() { fmt.Fprint(stderr, usage); fs.PrintDefaults() }
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if o.output != "text" && o.output != "json" {
		fmt.Fprintf(stderr, "closeloopctl: -o %q: must be text or json\n", o.output)
		return exitUsage
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return exitUsage
	}
	if _, err := parseAPI(o.api); err != nil {
		fmt.Fprintf(stderr, "closeloopctl: %v\n", err)
		return exitUsage
	}
	if o.timeout > 0 { // 0: no limit, for a long-running `anchor`
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.timeout)
		defer cancel()
	}

	err := dispatch(ctx, o, fs.Args(), stdout)
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(stderr, "closeloopctl: %v\n", err)
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.code == exitUsage {
			fmt.Fprintln(stderr, "run 'closeloopctl -h' for usage")
		}
		return ee.code
	}
	return exitFailure
}

func dispatch(ctx context.Context, o options, args []string, out io.Writer) error {
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "submit":
		return submit(ctx, o, rest, out)
	case "seed-demo":
		return seedDemo(ctx, o, out)
	case "migrate-subjects":
		return migrateSubjects(ctx, o, rest, out)
	case "migrate-pii-keys":
		return migratePIIKeys(ctx, o, rest, out)
	case "signing-keys":
		return signingKeys(rest, out)
	case "deadline":
		return deadline(ctx, o, rest, out, time.Now())
	case "calendars":
		return calendars(ctx, o, out)
	case "calendar":
		return calendarCmd(ctx, o, rest, out)
	case "history", "as-of", "export", "verify", "deadletters", "show", "anchor":
	default:
		return usageErr("unknown command %q", cmd)
	}
	conn, err := connect(ctx, o)
	if err != nil {
		return err
	}
	defer conn.close()
	switch cmd {
	case "show":
		if len(rest) != 1 {
			return usageErr("show takes one complaint id")
		}
		return show(ctx, conn, o, rest[0], out)
	case "history":
		if len(rest) != 1 {
			return usageErr("history takes one complaint id")
		}
		return history(ctx, conn, o, rest[0], out)
	case "as-of":
		if len(rest) != 2 {
			return usageErr("as-of takes a complaint id and an RFC 3339 instant")
		}
		at, err := time.Parse(time.RFC3339, rest[1])
		if err != nil {
			return usageErr("as-of: instant %q: must be RFC 3339, e.g. 2026-03-01T09:30:00+08:00", rest[1])
		}
		return asOf(ctx, conn, o, rest[0], at, out)
	case "export":
		if len(rest) != 1 {
			return usageErr("export takes one complaint id")
		}
		return export(ctx, conn, rest[0], out)
	case "verify":
		if len(rest) != 1 {
			return usageErr("verify takes a complaint id or --all")
		}
		return verify(ctx, conn, o, rest[0], out)
	case "anchor":
		return anchorLog(ctx, conn, o, rest, out)
	default:
		return deadLetters(ctx, conn, o, rest, out)
	}
}

func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

package main

import (
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	natsconf "github.com/closeloop/closeloop/deploy/nats"
	"github.com/closeloop/closeloop/libs/bus"
	"github.com/closeloop/closeloop/libs/clock"
	"github.com/closeloop/closeloop/libs/eventlog/anchor"
	"github.com/closeloop/closeloop/libs/eventlog/jsstore"
	"github.com/closeloop/closeloop/libs/natsembed"
	"github.com/closeloop/closeloop/libs/pii"
	"github.com/closeloop/closeloop/libs/platform"
	"github.com/closeloop/closeloop/libs/telemetry"
	"github.com/closeloop/closeloop/services/console"
	"github.com/closeloop/closeloop/services/dispatch"
	"github.com/closeloop/closeloop/services/followup"
	"github.com/closeloop/closeloop/services/intake"
	"github.com/closeloop/closeloop/services/routing"
	"github.com/closeloop/closeloop/services/slaclock"
)

type runnerConfig struct {
	DataDir string
	// Host is the address the NATS server and the services' APIs listen on.
	Host     string
	NATSPort int
	NoSync   bool
}

// devTokens are the well-known local credentials of `make run` (hashes only;
// the tokens are listed in the README). Used only when no credentials are
// configured.
//
//go:embed devtokens.json
var devTokens string

// builders make the services, each from its own configuration, in the
// order they start: the console after routing, whose gRPC API it calls.
var builders = []struct {
	name  string
	build func(platform.Deps) (platform.Service, error)
}{
	{intake.Name, intake.FromEnv},
	{routing.Name, routing.FromEnv},
	{console.Name, console.FromEnv},
	{slaclock.Name, slaclock.FromEnv},
	{dispatch.Name, dispatch.FromEnv},
	{followup.Name, followup.FromEnv},
}

func run(ctx context.Context, cfg runnerConfig, logger *slog.Logger) error {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	if err := localDefaults(cfg.DataDir, cfg.Host, logger); err != nil {
		return err
	}
	ns, err := startBus(ctx, cfg.DataDir, natsembed.Options{StoreDir: filepath.Join(cfg.DataDir, "nats"), Host: cfg.Host, Port: cfg.NATSPort, NoSync: cfg.NoSync})
	if err != nil {
		return err
	}
	defer ns.Shutdown()
	logger.Info("embedded NATS JetStream ready", "url", ns.ClientURL(), "store", filepath.Join(cfg.DataDir, "nats"),
		"credentials", secretsDir(cfg.DataDir), "sync_every_write", !cfg.NoSync)

	sys, err := startServices(ctx, ns, clock.Real{}, os.Stderr)
	if err != nil {
		return err
	}
	defer sys.close()
	return runAll(ctx, sys.services, logger)
}

// processName is the service.name of the otel globals in the runner: only
// a library that was not handed its service's providers reports under it.
const processName = "closeloop"

// system is the services startServices started.
type system struct {
	services []platform.Service
	// telemetry is each service's own, by name: every span and metric of
	// the service says service.name=<name>, and its /metrics page shows
	// only its own metrics.
	telemetry map[string]*telemetry.Telemetry
	// process backs the otel globals (service.name=closeloop).
	process *telemetry.Telemetry
	closers []func()
}

// close releases the services' logs and connections, then flushes and
// stops every provider (bounded: an unreachable collector must not hold
// the runner's exit).
func (s *system) close() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		s.closers[i]()
	}
	s.closers = nil
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, tel := range s.telemetry {
		_ = tel.Shutdown(ctx)
	}
	if s.process != nil {
		_ = s.process.Shutdown(ctx)
	}
	s.telemetry, s.process = nil, nil
}

// forceFlush exports what every provider holds (tests: to read the
// collector's view before the services stop).
func (s *system) forceFlush(ctx context.Context) error {
	var errs []error
	for _, tel := range s.telemetry {
		errs = append(errs, tel.ForceFlush(ctx))
	}
	errs = append(errs, s.process.ForceFlush(ctx))
	return errors.Join(errs...)
}

// startServices builds every service on its own connection to ns, as its
// own NATS user, and with its own telemetry, on clock clk, logging to
// logOut (the end-to-end test passes a fake clock and captures the logs). Connections go over loopback
// TCP, as a separate process's would: the in-process pipe reads the log
// more slowly (libs/eventlog/jsstore/README.md). The otel globals become
// a provider named closeloop: a library still reaching for them shows up
// under that name instead of under a service it does not belong to.
func startServices(ctx context.Context, ns *closedBus, clk clock.Clock, logOut io.Writer) (*system, error) {
	process, err := telemetry.New(ctx, processName)
	if err != nil {
		return nil, err
	}
	process.SetGlobal()
	sys := &system{telemetry: map[string]*telemetry.Telemetry{}, process: process}
	fail := func(err error) (*system, error) {
		sys.close()
		return nil, err
	}
	for _, b := range builders {
		tel, err := telemetry.New(ctx, b.name)
		if err != nil {
			return fail(fmt.Errorf("%s: %w", b.name, err))
		}
		sys.telemetry[b.name] = tel
		nc, err := ns.connect(b.name, "closeloop-"+b.name, false, telemetry.NewLogger(b.name, logOut))
		if err != nil {
			return fail(fmt.Errorf("%s: connect: %w", b.name, err))
		}
		deps, err := platform.NewDeps(ctx, nc, clk, telemetry.NewLogger(b.name, logOut), tel, ns.signing[b.name])
		if err != nil {
			nc.Close()
			return fail(fmt.Errorf("%s: %w", b.name, err))
		}
		sys.closers = append(sys.closers, func() { _ = deps.Log.Close(); nc.Close() })
		svc, err := b.build(deps)
		if err != nil {
			return fail(fmt.Errorf("%s: %w", b.name, err))
		}
		sys.services = append(sys.services, svc)
	}
	a, err := ns.newAnchorer(ctx, clk, telemetry.NewLogger("anchor", logOut))
	if err != nil {
		return fail(err)
	}
	sys.closers = append(sys.closers, a.close)
	sys.services = append(sys.services, a)
	return sys, nil
}

// runAll runs every service until ctx is done or one of them fails, which
// stops the others.
func runAll(ctx context.Context, services []platform.Service, logger *slog.Logger) error {
	parts := make([]func(context.Context) error, len(services))
	for i, s := range services {
		parts[i] = func(ctx context.Context) error {
			err := s.Run(ctx)
			if err != nil && !errors.Is(err, context.Canceled) {
				logger.Error("service failed; stopping the others", "service", s.Name(), "error", err)
				return fmt.Errorf("%s: %w", s.Name(), err)
			}
			return nil
		}
	}
	return platform.RunGroup(ctx, parts...)
}

// serviceAddrs are the variables naming where each service listens, with
// the port `make run` gives it.
var serviceAddrs = map[string]int{
	"INTAKE_GRPC_ADDR": 7001, "INTAKE_HTTP_ADDR": 8001,
	"ROUTING_GRPC_ADDR": 7002, "ROUTING_HTTP_ADDR": 8002,
	"SLACLOCK_GRPC_ADDR": 7003, "SLACLOCK_HTTP_ADDR": 8003,
	"DISPATCH_GRPC_ADDR": 7004, "DISPATCH_HTTP_ADDR": 8004,
	"FOLLOWUP_GRPC_ADDR": 7005, "FOLLOWUP_HTTP_ADDR": 8005,
	"CONSOLE_GRPC_ADDR": 7090, "CONSOLE_HTTP_ADDR": 8090,
}

// localDefaults gives `make run` what production configures explicitly: the
// services' APIs on host (loopback unless told otherwise), the well-known
// development credentials, and secrets generated once and kept in the data
// directory so that survey links and customer references stay valid across
// restarts.
func localDefaults(dataDir, host string, logger *slog.Logger) error {
	for name, port := range serviceAddrs {
		if os.Getenv(name) == "" {
			if err := os.Setenv(name, net.JoinHostPort(host, strconv.Itoa(port))); err != nil {
				return err
			}
		}
	}
	if os.Getenv(platform.EnvAnchorFile) == "" {
		if err := os.Setenv(platform.EnvAnchorFile, filepath.Join(dataDir, anchor.FileName)); err != nil {
			return err
		}
	}
	if os.Getenv("CONSOLE_ROUTING_ADDR") == "" {
		if err := os.Setenv("CONSOLE_ROUTING_ADDR", dialAddr(os.Getenv("ROUTING_GRPC_ADDR"), host)); err != nil {
			return err
		}
	}
	for name, listen := range map[string]string{"CONSOLE_FOLLOWUP_ADDR": "FOLLOWUP_GRPC_ADDR", "CONSOLE_SLACLOCK_ADDR": "SLACLOCK_GRPC_ADDR"} {
		if os.Getenv(name) == "" {
			if err := os.Setenv(name, dialAddr(os.Getenv(listen), host)); err != nil {
				return err
			}
		}
	}
	if os.Getenv("CLOSELOOP_TOKENS_FILE") == "" && os.Getenv("CLOSELOOP_TOKENS") == "" && os.Getenv("CLOSELOOP_AUTH") == "" {
		if err := os.Setenv("CLOSELOOP_TOKENS", devTokens); err != nil {
			return err
		}
		// The console's own token asks follow-up for the customers' survey links.
		if os.Getenv("CONSOLE_STATUS_TOKEN") == "" {
			if err := os.Setenv("CONSOLE_STATUS_TOKEN", "dev-console-token"); err != nil {
				return err
			}
		}
		logger.Warn("using the local development credentials (see README); set CLOSELOOP_TOKENS_FILE in any shared deployment")
	}
	// The console's index secret lives here too, so that its NATS user
	// needs no bucket of its own; and the key-encryption key of the PII
	// keys (intake's and dispatch's), which must never be in NATS.
	for _, name := range []string{"INTAKE_PII_SECRET", "FOLLOWUP_SURVEY_SECRET", "CONSOLE_INDEX_SECRET", "CONSOLE_STATUS_SECRET", pii.EnvKEK} {
		if os.Getenv(name) != "" || name == pii.EnvKEK && os.Getenv(pii.EnvKEKFile) != "" {
			continue
		}
		secret, err := localSecret(filepath.Join(secretsDir(dataDir), name))
		if err != nil {
			return err
		}
		if err := os.Setenv(name, secret); err != nil {
			return err
		}
	}
	return nil
}

// dialAddr is where a client on this machine reaches a listen address:
// one without a host (":7002", all interfaces) through host.
func dialAddr(listen, host string) string {
	h, port, err := net.SplitHostPort(listen)
	if err != nil || h != "" {
		return listen
	}
	return net.JoinHostPort(host, port)
}

// localSecret reads a secret file, creating it with 32 random bytes first.
func localSecret(path string) (string, error) {
	if b, err := os.ReadFile(path); err == nil {
		return string(b), nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", err
	}
	buf := make([]byte, 32)
	if _, err := rand.Read(buf); err != nil {
		return "", err
	}
	s := hex.EncodeToString(buf)
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		return "", err
	}
	return s, nil
}

// secretsDir holds what localSecret generates: the services' secrets and
// the bus's passwords (closeloopctl reads the ops one there).
func secretsDir(dataDir string) string { return filepath.Join(dataDir, "secrets") }

// closedBus is the embedded NATS server with the accounts and permissions
// of the deployed cluster (deploy/nats/accounts.conf): no anonymous client,
// one identity per service.
type closedBus struct {
	*natsembed.Server
	passwords map[string]string // by NATS user
	// signing is each service's key and the keyring (localSigning).
	signing map[string]platform.Signing
}

// startBus starts the embedded server of `make run` and of the runner's
// tests: the deployed accounts, with passwords from the environment
// (NATS_<USER>_PASSWORD, as on a cluster) or generated once into the data
// directory's secrets (mode 0600, reused after). It then creates or
// upgrades the event log and dead-letter streams as admin, the only
// identity that may change their configuration. The services' signing keys
// and keyring come from the data directory too (localSigning).
func startBus(ctx context.Context, dataDir string, o natsembed.Options) (*closedBus, error) {
	vars := map[string]string{}
	passwords := map[string]string{}
	for _, v := range natsconf.PasswordVars() {
		pw := os.Getenv(v)
		if pw == "" {
			var err error
			if pw, err = localSecret(filepath.Join(secretsDir(dataDir), v)); err != nil {
				return nil, fmt.Errorf("NATS credentials: %w", err)
			}
			// An editor's newline is not part of it (closeloopctl trims too).
			pw = strings.TrimSpace(pw)
		}
		vars[v] = pw
		user := strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(v, "NATS_"), "_PASSWORD"))
		passwords[user] = pw
	}
	o.Accounts, o.Variables = natsconf.Accounts, vars
	ns, err := natsembed.Start(o)
	if err != nil {
		return nil, err
	}
	b := &closedBus{Server: ns, passwords: passwords}
	head, err := b.setUpStreams(ctx)
	if err == nil {
		b.signing, err = localSigning(dataDir, head)
	}
	if err != nil {
		ns.Shutdown()
		return nil, err
	}
	return b, nil
}

// setUpStreams creates EVENTS and DEADLETTER, or brings them to the
// configuration this build wants, so that the services find them as they
// expect (they may not change them). It returns the log's head position.
func (b *closedBus) setUpStreams(ctx context.Context) (head uint64, err error) {
	nc, err := b.connect("admin", "closeloop-setup", true, nil)
	if err != nil {
		return 0, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return 0, err
	}
	cfg, err := platform.StoreConfigFromEnv()
	if err != nil {
		return 0, err
	}
	if err := anchor.EnsureStream(ctx, js, cfg.Replicas); err != nil {
		return 0, err
	}
	if err := platform.RefuseLostLog(ctx, js); err != nil {
		return 0, err
	}
	store, err := jsstore.New(ctx, js, cfg)
	if err != nil {
		return 0, fmt.Errorf("set up the event log: %w", err)
	}
	_ = store.Close()
	events, err := js.Stream(ctx, jsstore.StreamName)
	if err != nil {
		return 0, fmt.Errorf("set up the event log: %w", err)
	}
	return events.CachedInfo().State.LastSeq, bus.EnsureDeadLetterStream(ctx, js)
}

// envAnchorInterval sets how often the runner anchors the log (a Go
// duration; default anchor.DefaultInterval).
const envAnchorInterval = "CLOSELOOP_ANCHOR_INTERVAL"

// anchorer is the runner's one anchor writer, run beside the services as
// admin (the only identity that may write anchors): it anchors the log's
// head in the ANCHORS stream and in the file CLOSELOOP_ANCHOR_FILE names.
type anchorer struct {
	w     *anchor.Writer
	close func()
}

func (a *anchorer) Name() string { return "anchor" }

func (a *anchorer) Run(ctx context.Context) error { return a.w.Run(ctx) }

func (b *closedBus) newAnchorer(ctx context.Context, clk clock.Clock, logger *slog.Logger) (*anchorer, error) {
	every := anchor.DefaultInterval
	if v := os.Getenv(envAnchorInterval); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("%s=%q: must be a positive duration such as 10s", envAnchorInterval, v)
		}
		every = d
	}
	nc, err := b.connect("admin", "closeloop-anchor", true, logger)
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, err
	}
	log, err := jsstore.New(ctx, js, jsstore.Config{Logger: logger})
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("anchor: open the event log: %w", err)
	}
	w := &anchor.Writer{Log: log, Stores: platform.AnchorStores(js), Interval: every, Clock: clk, Logger: logger}
	return &anchorer{w: w, close: func() { _ = log.Close(); nc.Close() }}, nil
}

// refusedMsg is logged when NATS refuses a service an operation.
const refusedMsg = "NATS refused an operation"

// connect opens a connection as NATS user; in-process skips the TCP stack.
// A refused publish or subscription (a permission violation) comes back
// asynchronously: logger, when given, reports it.
func (b *closedBus) connect(user, name string, inProcess bool, logger *slog.Logger, extra ...nats.Option) (*nats.Conn, error) {
	pw, ok := b.passwords[user]
	if !ok {
		return nil, fmt.Errorf("NATS user %q: not in deploy/nats/accounts.conf", user)
	}
	opts := []nats.Option{nats.UserInfo(user, pw)}
	if logger != nil {
		opts = append(opts, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			logger.Error(refusedMsg, "user", user, "error", err)
		}))
	}
	nc, err := b.Connect(name, inProcess, append(opts, extra...)...)
	if err != nil {
		return nil, fmt.Errorf("connect to NATS as %s: %w", user, err)
	}
	return nc, nil
}

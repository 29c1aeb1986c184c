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
	"os"
	"path/filepath"
	"time"

	"github.com/closeloop/closeloop/libs/clock"
	"github.com/closeloop/closeloop/libs/natsembed"
	"github.com/closeloop/closeloop/libs/platform"
	"github.com/closeloop/closeloop/libs/telemetry"
	"github.com/closeloop/closeloop/services/dispatch"
	"github.com/closeloop/closeloop/services/followup"
	"github.com/closeloop/closeloop/services/intake"
	"github.com/closeloop/closeloop/services/routing"
	"github.com/closeloop/closeloop/services/slaclock"
)

type runnerConfig struct {
	DataDir  string
	NATSPort int
	NoSync   bool
}

// devTokens are the well-known local credentials of `make run` (hashes only;
// the tokens are listed in the README). Used only when no credentials are
// configured.
//
//go:embed devtokens.json
var devTokens string

// builders make the five services, each from its own configuration, in
// the order they start.
var builders = []struct {
	name  string
	build func(platform.Deps) (platform.Service, error)
}{
	{intake.Name, intake.FromEnv},
	{routing.Name, routing.FromEnv},
	{slaclock.Name, slaclock.FromEnv},
	{dispatch.Name, dispatch.FromEnv},
	{followup.Name, followup.FromEnv},
}

func run(ctx context.Context, cfg runnerConfig, logger *slog.Logger) error {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	if err := localDefaults(cfg.DataDir, logger); err != nil {
		return err
	}
	ns, err := natsembed.Start(natsembed.Options{StoreDir: filepath.Join(cfg.DataDir, "nats"), Port: cfg.NATSPort, NoSync: cfg.NoSync})
	if err != nil {
		return err
	}
	defer ns.Shutdown()
	logger.Info("embedded NATS JetStream ready", "url", ns.ClientURL(), "store", filepath.Join(cfg.DataDir, "nats"), "sync_every_write", !cfg.NoSync)

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

// system is the five services startServices started.
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

// startServices builds every service on its own connection to ns and with
// its own telemetry, on clock clk, logging to logOut (the end-to-end test
// passes a fake clock and captures the logs). Connections go over loopback
// TCP, as a separate process's would: the in-process pipe reads the log
// more slowly (libs/eventlog/jsstore/README.md). The otel globals become
// a provider named closeloop: a library still reaching for them shows up
// under that name instead of under a service it does not belong to.
func startServices(ctx context.Context, ns *natsembed.Server, clk clock.Clock, logOut io.Writer) (*system, error) {
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
		nc, err := ns.Connect("closeloop-"+b.name, false)
		if err != nil {
			return fail(fmt.Errorf("%s: connect: %w", b.name, err))
		}
		deps, err := platform.NewDeps(ctx, nc, clk, telemetry.NewLogger(b.name, logOut), tel)
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

// localDefaults gives `make run` what production configures explicitly: the
// well-known development credentials, and secrets generated once and kept in
// the data directory so that survey links and customer references stay valid
// across restarts.
func localDefaults(dataDir string, logger *slog.Logger) error {
	if os.Getenv("CLOSELOOP_TOKENS_FILE") == "" && os.Getenv("CLOSELOOP_TOKENS") == "" && os.Getenv("CLOSELOOP_AUTH") == "" {
		if err := os.Setenv("CLOSELOOP_TOKENS", devTokens); err != nil {
			return err
		}
		logger.Warn("using the local development credentials (see README); set CLOSELOOP_TOKENS_FILE in any shared deployment")
	}
	for _, name := range []string{"INTAKE_PII_SECRET", "FOLLOWUP_SURVEY_SECRET"} {
		if os.Getenv(name) != "" {
			continue
		}
		secret, err := localSecret(filepath.Join(dataDir, "secrets", name))
		if err != nil {
			return err
		}
		if err := os.Setenv(name, secret); err != nil {
			return err
		}
	}
	return nil
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

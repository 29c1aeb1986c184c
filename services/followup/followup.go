// Package followup is the follow-up service: after a complaint is resolved
// it schedules the customer feedback (24 h, 72 h) and sends the satisfaction
// survey, closes or reopens the complaint on the answer (or closes it
// NO_RESPONSE when none comes), schedules return visits for serious
// complaints, and serves the KPI read model.
package followup

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
	_ "time/tzdata" // the KPI time zone must load on hosts without a zoneinfo database

	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/closeloop/closeloop/libs/api"
	"github.com/closeloop/closeloop/libs/auth"
	"github.com/closeloop/closeloop/libs/bus"
	"github.com/closeloop/closeloop/libs/checkpoint"
	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/eventlog/jsstore"
	"github.com/closeloop/closeloop/libs/platform"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
	followupv1 "github.com/closeloop/closeloop/proto/gen/closeloop/followup/v1"
	"github.com/closeloop/closeloop/services/followup/internal/app"
	"github.com/closeloop/closeloop/services/followup/internal/domain"
	"github.com/closeloop/closeloop/services/followup/internal/kpi"
	"github.com/closeloop/closeloop/services/followup/internal/ports"
	"github.com/closeloop/closeloop/services/followup/internal/survey"
)

// Name is the service's name.
const Name = "followup"

// Durable is the bus consumer that reacts to resolutions and answers.
const Durable = "followup"

// Config configures the service. DefaultConfig holds the defaults.
type Config struct {
	GRPCAddr string // FOLLOWUP_GRPC_ADDR, default ":7005"
	HTTPAddr string // FOLLOWUP_HTTP_ADDR, default ":8005" (JSON face, survey pages, CSV export)
	// SurveySecret signs survey links (FOLLOWUP_SURVEY_SECRET, at least 32
	// bytes). Empty: a random one per process, and links die on restart.
	SurveySecret string
	// SurveyBaseURL is where customers reach the HTTP face
	// (FOLLOWUP_SURVEY_BASE_URL, default "http://localhost:8005").
	SurveyBaseURL string
	// Policy: FOLLOWUP_FIRST_FEEDBACK_WITHIN (24h), FOLLOWUP_SECOND_FEEDBACK_WITHIN
	// (72h), FOLLOWUP_NO_RESPONSE_AFTER (168h), FOLLOWUP_RETURN_VISIT_AFTER (720h),
	// FOLLOWUP_RETURN_VISIT_FROM (L3; L1–L4, or "none").
	Policy domain.Policy
	// KPILocation cuts KPI days, weeks and months (FOLLOWUP_KPI_TIMEZONE,
	// default "Asia/Shanghai").
	KPILocation *time.Location
	// KPIFoldAfter is how long, in log time, the KPI model keeps an ended
	// complaint's facts before folding them into its group's cell
	// (FOLLOWUP_KPI_FOLD_AFTER, default 720h). Events of a folded complaint
	// are ignored, so it must not be shorter than the last window after a
	// close that can still change a KPI: the second-feedback SLA.
	KPIFoldAfter time.Duration
	// Auth checks API callers (auth.FromEnv: CLOSELOOP_TOKENS_FILE,
	// CLOSELOOP_TOKENS or CLOSELOOP_AUTH=off). nil refuses every call.
	Auth auth.Authenticator
}

// DefaultConfig returns the defaults (without an authenticator).
func DefaultConfig() Config {
	// The time zone database is embedded (time/tzdata): this cannot fail,
	// and Validate would name the variable if it did.
	shanghai, _ := time.LoadLocation("Asia/Shanghai")
	return Config{
		GRPCAddr:      ":7005",
		HTTPAddr:      ":8005",
		SurveyBaseURL: "http://localhost:8005",
		Policy:        domain.DefaultPolicy(),
		KPILocation:   shanghai,
		KPIFoldAfter:  kpi.DefaultFoldAfter,
	}
}

// ConfigFromEnv reads the process environment over the defaults.
func ConfigFromEnv() (Config, error) { return ConfigOf(platform.NewEnv()) }

// ConfigOf reads env over the defaults, parses every setting once and
// validates the result; the error lists every mistake, each naming its
// variable.
func ConfigOf(env *platform.Env) (Config, error) {
	c := DefaultConfig()
	c.GRPCAddr = env.String("FOLLOWUP_GRPC_ADDR", c.GRPCAddr)
	c.HTTPAddr = env.String("FOLLOWUP_HTTP_ADDR", c.HTTPAddr)
	c.SurveySecret = env.String("FOLLOWUP_SURVEY_SECRET", c.SurveySecret)
	c.SurveyBaseURL = env.String("FOLLOWUP_SURVEY_BASE_URL", c.SurveyBaseURL)
	// Durations are parsed here and judged by Validate, which says what
	// is wrong with a negative one.
	for _, d := range []struct {
		name string
		dst  *time.Duration
	}{
		{"FOLLOWUP_FIRST_FEEDBACK_WITHIN", &c.Policy.FirstFeedbackWithin},
		{"FOLLOWUP_SECOND_FEEDBACK_WITHIN", &c.Policy.SecondFeedbackWithin},
		{"FOLLOWUP_NO_RESPONSE_AFTER", &c.Policy.NoResponseAfter},
		{"FOLLOWUP_RETURN_VISIT_AFTER", &c.Policy.ReturnVisitAfter},
		{"FOLLOWUP_KPI_FOLD_AFTER", &c.KPIFoldAfter},
	} {
		env.Parse(d.name, func(v string) error {
			parsed, err := time.ParseDuration(v)
			if err != nil {
				return fmt.Errorf("must be a Go duration such as 72h, got %q", v)
			}
			*d.dst = parsed
			return nil
		})
	}
	env.Parse("FOLLOWUP_RETURN_VISIT_FROM", func(v string) error {
		switch s := strings.ToUpper(v); s {
		case "NONE":
			c.Policy.ReturnVisitFrom = eventsv1.Severity_SEVERITY_UNSPECIFIED
		case "L1", "L2", "L3", "L4":
			c.Policy.ReturnVisitFrom = eventsv1.Severity(eventsv1.Severity_value["SEVERITY_"+s])
		default:
			return fmt.Errorf("must be L1, L2, L3, L4 or none, got %q", v)
		}
		return nil
	})
	env.Parse("FOLLOWUP_KPI_TIMEZONE", func(v string) error {
		loc, err := time.LoadLocation(v)
		if err != nil {
			return fmt.Errorf("unknown time zone %q", v)
		}
		c.KPILocation = loc
		return nil
	})
	a, err := auth.FromLookup(env.Lookup)
	env.Check(err)
	c.Auth = a
	if err := errors.Join(env.Err(), c.Validate()); err != nil {
		return Config{}, err
	}
	return c, nil
}

// Validate checks the configuration; errors name the environment variable.
func (c Config) Validate() error {
	var errs []error
	if c.GRPCAddr == "" {
		errs = append(errs, errors.New("FOLLOWUP_GRPC_ADDR: required"))
	}
	if c.HTTPAddr == "" {
		errs = append(errs, errors.New("FOLLOWUP_HTTP_ADDR: required (it serves the survey pages)"))
	}
	if c.SurveySecret != "" && len(c.SurveySecret) < survey.MinSecretLen {
		errs = append(errs, fmt.Errorf("FOLLOWUP_SURVEY_SECRET: must be at least %d bytes", survey.MinSecretLen))
	}
	if !strings.HasPrefix(c.SurveyBaseURL, "http://") && !strings.HasPrefix(c.SurveyBaseURL, "https://") {
		errs = append(errs, errors.New("FOLLOWUP_SURVEY_BASE_URL: must be an http(s) URL"))
	}
	p := c.Policy
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"FOLLOWUP_FIRST_FEEDBACK_WITHIN", p.FirstFeedbackWithin},
		{"FOLLOWUP_SECOND_FEEDBACK_WITHIN", p.SecondFeedbackWithin},
		{"FOLLOWUP_NO_RESPONSE_AFTER", p.NoResponseAfter},
		{"FOLLOWUP_RETURN_VISIT_AFTER", p.ReturnVisitAfter},
	} {
		if d.v <= 0 {
			errs = append(errs, fmt.Errorf("%s: must be positive, got %s", d.name, d.v))
		}
	}
	if p.SecondFeedbackWithin < p.FirstFeedbackWithin {
		errs = append(errs, errors.New("FOLLOWUP_SECOND_FEEDBACK_WITHIN: must not be before FOLLOWUP_FIRST_FEEDBACK_WITHIN"))
	}
	if c.KPIFoldAfter < p.SecondFeedbackWithin {
		errs = append(errs, fmt.Errorf("FOLLOWUP_KPI_FOLD_AFTER: must be at least FOLLOWUP_SECOND_FEEDBACK_WITHIN (%s): a later SLA result would be lost, got %s",
			p.SecondFeedbackWithin, c.KPIFoldAfter))
	}
	if c.KPILocation == nil {
		errs = append(errs, errors.New("FOLLOWUP_KPI_TIMEZONE: required"))
	}
	return errors.Join(errs...)
}

// Service is the running follow-up service.
type Service struct {
	deps    platform.Deps
	cfg     Config
	log     *slog.Logger
	tracers trace.TracerProvider
	meters  metric.MeterProvider
	app     *app.App
	kpi     *kpi.Model
	// follower keeps the tracker and the KPI model (views) with the log.
	views    *app.Views
	follower *checkpoint.Follower
	api      *api.Server
	http     *http.Server
	httpLis  net.Listener

	ready     chan struct{}
	readyOnce sync.Once
}

// FromEnv builds the service from its environment (ConfigFromEnv): what
// its own binary and the standalone runner call.
func FromEnv(deps platform.Deps) (platform.Service, error) {
	cfg, err := ConfigFromEnv()
	if err != nil {
		return nil, err
	}
	return New(deps, cfg)
}

// New builds the service; Run starts it.
func New(deps platform.Deps, cfg Config) (*Service, error) {
	if deps.Log == nil || deps.JS == nil || deps.Clock == nil {
		return nil, errors.New("followup: deps: Log, JS and Clock are required")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	logger := deps.Logger
	if logger == nil {
		logger = slog.Default()
	}
	// Without the runner's providers (tests) nothing is recorded: never
	// the otel globals, which would mix the services' telemetry.
	tracers, meters := deps.TracerProvider, deps.MeterProvider
	if tracers == nil {
		tracers = tracenoop.NewTracerProvider()
	}
	if meters == nil {
		meters = metricnoop.NewMeterProvider()
	}
	secret := []byte(cfg.SurveySecret)
	if len(secret) == 0 {
		secret = make([]byte, survey.MinSecretLen)
		_, _ = rand.Read(secret)
		logger.Warn("FOLLOWUP_SURVEY_SECRET is not set: using a random secret; survey links stop working when the process restarts")
	}
	signer, err := survey.NewSigner(secret)
	if err != nil {
		return nil, err
	}
	tracker := app.NewTracker()
	a, err := app.New(app.Options{
		Log: deps.Log, Clock: deps.Clock, Signer: signer, Policy: cfg.Policy, BaseURL: cfg.SurveyBaseURL,
		Logger: logger, Tracker: tracker, TracerProvider: tracers,
	})
	if err != nil {
		return nil, err
	}
	model := kpi.NewWith(kpi.Options{FoldAfter: cfg.KPIFoldAfter})
	views := &app.Views{Tracker: tracker, KPI: model}
	follower, err := checkpoint.New(checkpoint.Options{
		Name: app.ViewsName, Format: app.ViewsFormat, Log: deps.Log, Snapshots: deps.Snapshots, Rebuild: deps.RebuildViews,
		Logger: logger, Verifier: deps.Verifier,
	}, views)
	if err != nil {
		return nil, fmt.Errorf("followup: %w", err)
	}
	// Calls wait for the views: due tasks and KPIs from a partial view
	// would look like answers.
	apiSrv := api.NewServer(api.Options{
		Name: Name, Metrics: deps.Metrics, GRPCAddr: cfg.GRPCAddr, Logger: logger, Authenticator: cfg.Auth,
		TracerProvider: tracers, MeterProvider: meters, ReadyWhen: follower.CaughtUp(),
		Health: deps.LogHealth,
	})
	g := &ports.GRPC{App: a, KPI: model, KPILocation: cfg.KPILocation}
	followupv1.RegisterFollowupServiceServer(apiSrv.GRPC(), g)
	followupv1.RegisterKpiServiceServer(apiSrv.GRPC(), g)

	mux := http.NewServeMux()
	(&ports.HTTP{GRPC: g, Auth: cfg.Auth, Logger: logger, Ready: follower.CaughtUp()}).Register(mux)
	mux.Handle("/", apiSrv.HTTPHandler())

	return &Service{
		deps: deps, cfg: cfg, log: logger, tracers: tracers, meters: meters,
		app: a, kpi: model, views: views, follower: follower, api: apiSrv,
		http:  &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second},
		ready: make(chan struct{}),
	}, nil
}

// Name implements platform.Service.
func (s *Service) Name() string { return Name }

// Ready is closed once the service listens and consumes.
func (s *Service) Ready() <-chan struct{} { return s.ready }

// GRPCAddr and HTTPAddr are the bound addresses (after Ready).
func (s *Service) GRPCAddr() string { return s.api.GRPCAddr() }
func (s *Service) HTTPAddr() string { return s.httpLis.Addr().String() }

// Follower is what keeps the tracker and the KPI model (its start:
// restored or rebuilt).
func (s *Service) Follower() *checkpoint.Follower { return s.follower }

// Views are the tracker and the KPI model, for tests to compare.
func (s *Service) Views() *app.Views { return s.views }

// KPIPosition is the log position the KPI read model has applied up to.
func (s *Service) KPIPosition() uint64 { return s.kpi.Position() }

// Run implements platform.Service: it restores the tracker and the KPI
// model from their snapshot, catches them up with the log and keeps
// following it. It serves at once: the survey pages read the complaint's
// stream, while calls that read the views are refused as unavailable
// until they caught up. Once caught up it reacts to resolutions and
// answers through the bus and fires the no-response timers.
func (s *Service) Run(ctx context.Context) error {
	lis, err := net.Listen("tcp", s.cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("followup: listen HTTP on %s: %w", s.cfg.HTTPAddr, err)
	}
	if err := s.api.Listen(); err != nil {
		lis.Close()
		return err
	}
	s.httpLis = lis
	return platform.RunGroup(ctx,
		s.followLog,
		s.api.Run,
		s.serveHTTP,
		s.stopHTTP,
		s.afterCatchUp(s.consume),
		s.afterCatchUp(func(ctx context.Context) error { s.app.RunNoResponseTimers(ctx); return nil }),
	)
}

// followLog keeps both read models, the timers' tracker and the KPIs,
// with the log: restored from their snapshot, caught up, then following.
func (s *Service) followLog(ctx context.Context) error {
	if err := s.follower.Run(ctx); err != nil {
		return fmt.Errorf("followup: follow the log: %w", err)
	}
	return nil
}

// afterCatchUp runs part once the views have caught up with the log, so
// timers fire on every deadline the log holds; nothing if ctx ends first.
func (s *Service) afterCatchUp(part func(context.Context) error) func(context.Context) error {
	return func(ctx context.Context) error {
		select {
		case <-s.follower.CaughtUp():
			return part(ctx)
		case <-ctx.Done():
			return nil
		}
	}
}

// consume reacts to the complaint events until ctx is done. The subject
// names the complaint, not the event type: the consumer takes every
// complaint event and React keeps the two it handles.
func (s *Service) consume(ctx context.Context) error {
	sub, err := bus.Subscribe(ctx, s.deps.JS, bus.Options{
		Durable:        Durable,
		Verifier:       s.deps.Verifier,
		Subjects:       []string{jsstore.KindSubjects(eventlog.KindComplaint)},
		Logger:         s.log,
		TracerProvider: s.tracers,
		MeterProvider:  s.meters,
	}, s.app.React)
	if err != nil {
		return fmt.Errorf("followup: subscribe: %w", err)
	}
	s.readyOnce.Do(func() { close(s.ready) })
	s.log.Info("followup: running", "grpc", s.GRPCAddr(), "http", s.HTTPAddr())
	<-ctx.Done()
	sub.Stop()
	return nil
}

// serveHTTP serves the survey pages, the CSV export and the JSON face
// until stopHTTP shuts the server down.
func (s *Service) serveHTTP(context.Context) error {
	if err := s.http.Serve(s.httpLis); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("followup: serve HTTP: %w", err)
	}
	return nil
}

// stopHTTP shuts the HTTP server down when ctx is done, letting requests
// in flight finish.
func (s *Service) stopHTTP(ctx context.Context) error {
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	_ = s.http.Shutdown(sctx)
	return nil
}

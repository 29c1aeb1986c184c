// Package auth says who is calling a service and what they may do.
// Credentials come from configuration, never code: a file or environment
// variable lists the SHA-256 of each bearer token with the principal it
// stands for. A gRPC interceptor authenticates every call (health checks and
// reflection excepted) and puts the Principal in the context; handlers then
// ask RequireRole / RequireChannel.
package auth

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Principal kinds.
const (
	KindAdapter = "adapter" // a channel adapter (hotline, app, dealer portal...)
	KindUser    = "user"    // a person working in the back office
	KindService = "service" // another closeloop service or an operations tool
)

// Roles.
const (
	RoleAgent           = "agent"
	RoleTeamLead        = "team_lead"
	RoleManager         = "manager"
	RoleQualityReviewer = "quality_reviewer"
	RoleSeniorManager   = "senior_manager"
	RoleTechnician      = "technician"
	RoleAuditor         = "auditor"
	RoleAdmin           = "admin"
	// RoleCustomerLinks passes the customer's own links on (the console's
	// status page): it reads a complaint's follow-up with its survey link
	// and may do nothing else.
	RoleCustomerLinks = "customer_links"
)

// Roles lists every known role.
var Roles = []string{RoleAgent, RoleTeamLead, RoleManager, RoleQualityReviewer, RoleSeniorManager, RoleTechnician, RoleAuditor, RoleAdmin, RoleCustomerLinks}

// Principal is an authenticated caller.
type Principal struct {
	ID   string `json:"id"`
	Kind string `json:"kind"`
	// Channels an adapter may submit for (adapters only).
	Channels []string `json:"channels,omitempty"`
	Roles    []string `json:"roles,omitempty"`
}

// HasRole reports whether p holds one of roles.
func (p Principal) HasRole(roles ...string) bool {
	for _, r := range roles {
		if slices.Contains(p.Roles, r) {
			return true
		}
	}
	return false
}

// Authenticator turns a bearer token into a principal.
type Authenticator interface {
	// Authenticate returns the principal of token ("" when the call carried
	// none), or an error when it is unknown.
	Authenticate(ctx context.Context, token string) (Principal, error)
}

// ErrUnknownToken is returned for a missing or unrecognised token.
var ErrUnknownToken = errors.New("auth: missing or unknown bearer token")

// Allow authenticates every call, with or without a token, as the
// all-roles principal "dev". It is for tests and local development only and
// must be chosen explicitly (CLOSELOOP_AUTH=off for FromEnv).
var Allow Authenticator = allowAll{}

type allowAll struct{}

func (allowAll) Authenticate(context.Context, string) (Principal, error) {
	return Principal{ID: "dev", Kind: KindService, Roles: slices.Clone(Roles)}, nil
}

// TokenEntry is one line of the token configuration.
type TokenEntry struct {
	// TokenSHA256 is the lower-case hex SHA-256 of the token (HashToken).
	TokenSHA256 string `json:"token_sha256"`
	Principal
}

// StaticTokens authenticates against a fixed list of token hashes.
type StaticTokens struct {
	entries []staticEntry
}

type staticEntry struct {
	hash [sha256.Size]byte
	p    Principal
}

// HashToken returns the hex SHA-256 of a token, as stored in the
// configuration.
func HashToken(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

// NewStaticTokens validates entries: a 64-hex-digit hash, unique; an id; a
// known kind; known roles; channels only on adapters, and at least one.
func NewStaticTokens(entries []TokenEntry) (*StaticTokens, error) {
	s := &StaticTokens{}
	seen := map[string]bool{}
	for i, e := range entries {
		at := fmt.Sprintf("tokens[%d]", i)
		raw, err := hex.DecodeString(e.TokenSHA256)
		if err != nil || len(raw) != sha256.Size {
			return nil, fmt.Errorf("auth: %s.token_sha256: must be 64 hex digits (the SHA-256 of the token, not the token)", at)
		}
		key := strings.ToLower(e.TokenSHA256)
		if seen[key] {
			return nil, fmt.Errorf("auth: %s.token_sha256: duplicate of an earlier entry", at)
		}
		seen[key] = true
		if e.ID == "" {
			return nil, fmt.Errorf("auth: %s.id: required", at)
		}
		switch e.Kind {
		case KindAdapter:
			if len(e.Channels) == 0 {
				return nil, fmt.Errorf("auth: %s.channels: an adapter needs at least one channel", at)
			}
		case KindUser, KindService:
			if len(e.Channels) != 0 {
				return nil, fmt.Errorf("auth: %s.channels: only adapters are bound to channels", at)
			}
		default:
			return nil, fmt.Errorf("auth: %s.kind: must be adapter, user or service, got %q", at, e.Kind)
		}
		for _, r := range e.Roles {
			if !slices.Contains(Roles, r) {
				return nil, fmt.Errorf("auth: %s.roles: unknown role %q (known: %s)", at, r, strings.Join(Roles, ", "))
			}
		}
		var se staticEntry
		copy(se.hash[:], raw)
		se.p = e.Principal
		s.entries = append(s.entries, se)
	}
	return s, nil
}

// ParseTokens reads the JSON list of TokenEntry.
func ParseTokens(data []byte) (*StaticTokens, error) {
	var entries []TokenEntry
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&entries); err != nil {
		return nil, fmt.Errorf("auth: tokens: not a JSON list of {token_sha256, id, kind, channels, roles}: %w", err)
	}
	return NewStaticTokens(entries)
}

// Authenticate implements Authenticator. Every entry is compared, in
// constant time, so timing does not tell how close a guess was.
func (s *StaticTokens) Authenticate(_ context.Context, token string) (Principal, error) {
	if token == "" {
		return Principal{}, ErrUnknownToken
	}
	h := sha256.Sum256([]byte(token))
	found := -1
	for i := range s.entries {
		if subtle.ConstantTimeCompare(h[:], s.entries[i].hash[:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return Principal{}, ErrUnknownToken
	}
	return s.entries[found].p, nil
}

// Environment variables read by FromEnv.
const (
	EnvTokensFile = "CLOSELOOP_TOKENS_FILE"
	EnvTokens     = "CLOSELOOP_TOKENS"
	EnvAuth       = "CLOSELOOP_AUTH"
)

// FromEnv builds the authenticator from the environment:
// CLOSELOOP_TOKENS_FILE (path of the JSON token list) or CLOSELOOP_TOKENS
// (the JSON itself). CLOSELOOP_AUTH=off selects Allow, for local development
// only. With none of them set it fails: a service never runs open by
// accident.
func FromEnv() (Authenticator, error) { return FromLookup(os.LookupEnv) }

// FromLookup is FromEnv reading variables through lookup (a service's
// platform.Env, or a test's map).
func FromLookup(lookup func(string) (string, bool)) (Authenticator, error) {
	get := func(name string) string { v, _ := lookup(name); return v }
	switch mode := get(EnvAuth); mode {
	case "off":
		return Allow, nil
	case "", "tokens":
	default:
		return nil, fmt.Errorf("auth: %s: must be \"tokens\" or \"off\", got %q", EnvAuth, mode)
	}
	if path := get(EnvTokensFile); path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("auth: %s: %w", EnvTokensFile, err)
		}
		t, err := ParseTokens(data)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", EnvTokensFile, path, err)
		}
		return t, nil
	}
	if js := get(EnvTokens); js != "" {
		t, err := ParseTokens([]byte(js))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", EnvTokens, err)
		}
		return t, nil
	}
	return nil, fmt.Errorf("auth: no credentials configured: set %s or %s (or %s=off for local development)", EnvTokensFile, EnvTokens, EnvAuth)
}

type principalKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// FromContext returns the caller, if the call was authenticated.
func FromContext(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

// RequireRole returns nil when the caller holds one of roles, else a
// PermissionDenied status naming the operation and the roles it needs.
func RequireRole(ctx context.Context, roles ...string) error {
	p, ok := FromContext(ctx)
	if !ok {
		return status.Error(codes.Unauthenticated, "not authenticated")
	}
	if p.HasRole(roles...) {
		return nil
	}
	op, _ := grpc.Method(ctx)
	if op == "" {
		op = "this operation"
	}
	return status.Errorf(codes.PermissionDenied, "%s requires role %s", op, strings.Join(roles, " or "))
}

// RequireChannel returns nil when the caller may act for channel: an
// adapter only for the channels it is configured with; users and services
// are not bound to channels (their roles decide).
func RequireChannel(ctx context.Context, channel string) error {
	p, ok := FromContext(ctx)
	if !ok {
		return status.Error(codes.Unauthenticated, "not authenticated")
	}
	if p.Kind != KindAdapter || slices.Contains(p.Channels, channel) {
		return nil
	}
	return status.Errorf(codes.PermissionDenied, "adapter %s may not submit for channel %q", p.ID, channel)
}

// Public reports whether a gRPC method is open to everyone: health checks
// and reflection.
func Public(fullMethod string) bool {
	return strings.HasPrefix(fullMethod, "/grpc.health.v1.Health/") ||
		strings.HasPrefix(fullMethod, "/grpc.reflection.")
}

// bearer returns the token of "authorization: Bearer <token>".
func bearer(ctx context.Context) string {
	md, _ := metadata.FromIncomingContext(ctx)
	for _, v := range md.Get("authorization") {
		if scheme, tok, ok := strings.Cut(v, " "); ok && strings.EqualFold(scheme, "bearer") {
			return strings.TrimSpace(tok)
		}
	}
	return ""
}

func authenticate(ctx context.Context, a Authenticator, fullMethod string) (context.Context, error) {
	if Public(fullMethod) {
		return ctx, nil
	}
	if a == nil {
		return nil, status.Error(codes.Unauthenticated, "no authenticator configured")
	}
	p, err := a.Authenticate(ctx, bearer(ctx))
	if err != nil {
		return nil, status.Error(codes.Unauthenticated, "missing or unknown bearer token")
	}
	return WithPrincipal(ctx, p), nil
}

// UnaryServerInterceptor authenticates every unary call but the public
// ones. A nil Authenticator refuses them all.
func UnaryServerInterceptor(a Authenticator) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		ctx, err := authenticate(ctx, a, info.FullMethod)
		if err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

// StreamServerInterceptor is UnaryServerInterceptor for streams.
func StreamServerInterceptor(a Authenticator) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx, err := authenticate(ss.Context(), a, info.FullMethod)
		if err != nil {
			return err
		}
		return handler(srv, &wrappedStream{ServerStream: ss, ctx: ctx})
	}
}

type wrappedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (w *wrappedStream) Context() context.Context { return w.ctx }

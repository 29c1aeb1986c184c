package auth_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/closeloop/closeloop/libs/auth"
)

func tokensJSON() string {
	return `[
	 {"token_sha256": "` + auth.HashToken("hotline-secret") + `", "id": "hotline", "kind": "adapter", "channels": ["hotline"]},
	 {"token_sha256": "` + auth.HashToken("alice-secret") + `", "id": "alice", "kind": "user", "roles": ["agent", "team_lead"]}
	]`
}

func TestStaticTokensAuthenticate(t *testing.T) {
	a, err := auth.ParseTokens([]byte(tokensJSON()))
	if err != nil {
		t.Fatal(err)
	}
	p, err := a.Authenticate(context.Background(), "alice-secret")
	if err != nil || p.ID != "alice" || p.Kind != auth.KindUser || !p.HasRole(auth.RoleTeamLead) {
		t.Fatalf("alice: %+v, %v", p, err)
	}
	for _, tok := range []string{"", "alice-secret ", "unknown", auth.HashToken("alice-secret")} {
		if _, err := a.Authenticate(context.Background(), tok); err != auth.ErrUnknownToken {
			t.Errorf("token %q: err %v, want ErrUnknownToken", tok, err)
		}
	}
}

func TestTokenConfigurationIsValidated(t *testing.T) {
	h := auth.HashToken("x")
	for _, tc := range []struct{ json, wantInErr string }{
		{`[{"token_sha256": "plain-token", "id": "a", "kind": "user"}]`, "tokens[0].token_sha256"},
		{`[{"token_sha256": "` + h + `", "id": "a", "kind": "user"}, {"token_sha256": "` + h + `", "id": "b", "kind": "user"}]`, "tokens[1].token_sha256: duplicate"},
		{`[{"token_sha256": "` + h + `", "kind": "user"}]`, "tokens[0].id: required"},
		{`[{"token_sha256": "` + h + `", "id": "a", "kind": "robot"}]`, "tokens[0].kind"},
		{`[{"token_sha256": "` + h + `", "id": "a", "kind": "user", "roles": ["god"]}]`, `unknown role "god"`},
		{`[{"token_sha256": "` + h + `", "id": "a", "kind": "adapter"}]`, "tokens[0].channels"},
		{`[{"token_sha256": "` + h + `", "id": "a", "kind": "user", "channels": ["app"]}]`, "tokens[0].channels"},
		{`[{"token": "x", "id": "a", "kind": "user"}]`, "not a JSON list"},
		{`{}`, "not a JSON list"},
	} {
		_, err := auth.ParseTokens([]byte(tc.json))
		if err == nil || !strings.Contains(err.Error(), tc.wantInErr) {
			t.Errorf("ParseTokens(%s) = %v, want error containing %q", tc.json, err, tc.wantInErr)
		}
	}
}

func TestFromEnv(t *testing.T) {
	t.Setenv(auth.EnvAuth, "")
	t.Setenv(auth.EnvTokens, "")
	t.Setenv(auth.EnvTokensFile, "")
	if _, err := auth.FromEnv(); err == nil || !strings.Contains(err.Error(), auth.EnvTokensFile) {
		t.Fatalf("no configuration: err %v, want one naming %s", err, auth.EnvTokensFile)
	}

	t.Setenv(auth.EnvTokens, tokensJSON())
	a, err := auth.FromEnv()
	if err != nil {
		t.Fatal(err)
	}
	if p, err := a.Authenticate(context.Background(), "hotline-secret"); err != nil || p.ID != "hotline" {
		t.Fatalf("from %s: %+v, %v", auth.EnvTokens, p, err)
	}

	file := filepath.Join(t.TempDir(), "tokens.json")
	if err := os.WriteFile(file, []byte(`[{"token_sha256": "`+auth.HashToken("ops")+`", "id": "ops", "kind": "service", "roles": ["admin"]}]`), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(auth.EnvTokensFile, file)
	a, err = auth.FromEnv()
	if err != nil {
		t.Fatal(err)
	}
	if p, err := a.Authenticate(context.Background(), "ops"); err != nil || p.ID != "ops" {
		t.Fatalf("from file: %+v, %v", p, err)
	}

	t.Setenv(auth.EnvTokensFile, filepath.Join(t.TempDir(), "missing.json"))
	if _, err := auth.FromEnv(); err == nil || !strings.Contains(err.Error(), auth.EnvTokensFile) {
		t.Fatalf("missing file: err %v", err)
	}

	t.Setenv(auth.EnvAuth, "off")
	if a, err := auth.FromEnv(); err != nil || a != auth.Allow {
		t.Fatalf("%s=off: %v, %v; want Allow", auth.EnvAuth, a, err)
	}
	t.Setenv(auth.EnvAuth, "maybe")
	if _, err := auth.FromEnv(); err == nil || !strings.Contains(err.Error(), auth.EnvAuth) {
		t.Fatalf("bad mode: err %v", err)
	}
}

func call(t *testing.T, a auth.Authenticator, method, authorization string) (context.Context, error) {
	t.Helper()
	ctx := context.Background()
	if authorization != "" {
		ctx = metadata.NewIncomingContext(ctx, metadata.Pairs("authorization", authorization))
	}
	var got context.Context
	_, err := auth.UnaryServerInterceptor(a)(ctx, nil, &grpc.UnaryServerInfo{FullMethod: method},
		func(ctx context.Context, _ any) (any, error) { got = ctx; return nil, nil })
	return got, err
}

func TestInterceptor(t *testing.T) {
	a, err := auth.ParseTokens([]byte(tokensJSON()))
	if err != nil {
		t.Fatal(err)
	}
	const method = "/closeloop.routing.v1.RoutingService/Assign"
	ctx, err := call(t, a, method, "Bearer alice-secret")
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := auth.FromContext(ctx); !ok || p.ID != "alice" {
		t.Fatalf("principal %+v, %v", p, ok)
	}
	for _, h := range []string{"", "Bearer wrong", "Basic YWxpY2U6c2VjcmV0", "alice-secret"} {
		if _, err := call(t, a, method, h); status.Code(err) != codes.Unauthenticated {
			t.Errorf("authorization %q: %v, want Unauthenticated", h, err)
		}
	}
	if _, err := call(t, nil, method, "Bearer alice-secret"); status.Code(err) != codes.Unauthenticated {
		t.Errorf("nil authenticator: %v, want Unauthenticated", err)
	}
	for _, m := range []string{"/grpc.health.v1.Health/Check", "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"} {
		if _, err := call(t, a, m, ""); err != nil {
			t.Errorf("%s without a token: %v, want allowed", m, err)
		}
	}
	if _, err := call(t, auth.Allow, method, ""); err != nil {
		t.Errorf("Allow refused: %v", err)
	}
}

func TestRequireRoleAndChannel(t *testing.T) {
	agent := auth.WithPrincipal(context.Background(), auth.Principal{ID: "alice", Kind: auth.KindUser, Roles: []string{auth.RoleAgent}})
	if err := auth.RequireRole(agent, auth.RoleAgent, auth.RoleManager); err != nil {
		t.Fatal(err)
	}
	err := auth.RequireRole(agent, auth.RoleManager, auth.RoleSeniorManager)
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "manager or senior_manager") {
		t.Fatalf("RequireRole: %v, want PermissionDenied naming the roles", err)
	}
	if err := auth.RequireRole(context.Background(), auth.RoleAgent); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("no principal: %v", err)
	}

	adapter := auth.WithPrincipal(context.Background(), auth.Principal{ID: "app", Kind: auth.KindAdapter, Channels: []string{"app"}})
	if err := auth.RequireChannel(adapter, "app"); err != nil {
		t.Fatal(err)
	}
	if err := auth.RequireChannel(adapter, "hotline"); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("adapter on another channel: %v", err)
	}
	if err := auth.RequireChannel(agent, "hotline"); err != nil {
		t.Fatalf("user: %v, users are not bound to channels", err)
	}
}

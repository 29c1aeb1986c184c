package ports

import (
	"context"
	"errors"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/closeloop/closeloop/libs/auth"
	"github.com/closeloop/closeloop/libs/kernel"
	followupv1 "github.com/closeloop/closeloop/proto/gen/closeloop/followup/v1"
)

// An auditor reads a complaint's follow-up, as they read it in routing,
// sla-clock and dispatch; a technician does not. The request has no id,
// so a caller let through is stopped by the id check, before the app.
func TestAuditorReadsAFollowUp(t *testing.T) {
	g := &GRPC{}
	as := func(role string) context.Context {
		return auth.WithPrincipal(context.Background(), auth.Principal{ID: role + "-1", Kind: "person", Roles: []string{role}})
	}
	var invalid *kernel.InvalidError
	if _, err := g.GetFollowUp(as(auth.RoleAuditor), &followupv1.GetFollowUpRequest{}); !errors.As(err, &invalid) {
		t.Fatalf("auditor: %v, want past the role check (complaint_id required)", err)
	}
	if _, err := g.GetFollowUp(as(auth.RoleTechnician), &followupv1.GetFollowUpRequest{}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("technician: %v, want PermissionDenied", err)
	}
}

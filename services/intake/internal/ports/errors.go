// Package ports exposes intake's use cases: the gRPC service (served with
// its HTTP/JSON face by libs/api), the NATS request subject, which goes
// through that same face, and the per-caller rate limit interceptor.
package ports

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/closeloop/closeloop/libs/api"
	"github.com/closeloop/closeloop/services/intake/internal/app"
	"github.com/closeloop/closeloop/services/intake/internal/domain"
)

// toStatus maps a use case's error to a gRPC status. Messages of our errors
// carry field names, rules, ids and channels, never personal data; anything
// unexpected is logged and answered as Internal.
func toStatus(ctx context.Context, log *slog.Logger, method string, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	var ve *app.ValidationError
	switch {
	case errors.As(err, &ve):
		return api.InvalidArgument(ve.Error(), violations(ve.Violations)...)
	case errors.Is(err, app.ErrPermission):
		return status.Error(codes.PermissionDenied, err.Error())
	case errors.Is(err, domain.ErrNotFound):
		return status.Error(codes.NotFound, "complaint not found")
	case errors.Is(err, domain.ErrWithdrawn), errors.Is(err, domain.ErrErased):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, app.ErrRetryLater):
		// Another submission of the same problem is being recorded: the
		// caller retries in a moment (HTTP 503 with Retry-After).
		st, derr := status.New(codes.Unavailable, err.Error()).WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(time.Second)})
		if derr != nil {
			return status.Error(codes.Unavailable, err.Error())
		}
		return st.Err()
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "request canceled")
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "deadline exceeded")
	}
	log.ErrorContext(ctx, "intake request failed", "method", method, "err", err)
	return status.Error(codes.Internal, "internal error")
}

func violations(vs []domain.Violation) []api.Violation {
	out := make([]api.Violation, len(vs))
	for i, v := range vs {
		out[i] = api.Violation{Field: v.Field, Rule: v.Rule, Message: v.Message}
	}
	return out
}

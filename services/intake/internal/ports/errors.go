// Package ports exposes intake's use cases: the gRPC service, its HTTP/JSON
// face and the NATS request subject, all three through the same
// interceptors (authentication, rate limit) and the same error mapping.
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

	"github.com/closeloop/closeloop/services/intake/internal/app"
	"github.com/closeloop/closeloop/services/intake/internal/domain"
)

// InvalidArgument is codes.InvalidArgument with one BadRequest field
// violation per broken rule (Reason = the rule).
func InvalidArgument(v []domain.Violation) error {
	br := &errdetails.BadRequest{}
	for _, x := range v {
		br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{Field: x.Field, Description: x.Message, Reason: x.Rule})
	}
	st, err := status.New(codes.InvalidArgument, (&app.ValidationError{Violations: v}).Error()).WithDetails(br)
	if err != nil {
		return status.Error(codes.InvalidArgument, "invalid request")
	}
	return st.Err()
}

// ResourceExhausted is codes.ResourceExhausted with a RetryInfo hint.
func ResourceExhausted(msg string, retry time.Duration) error {
	st, err := status.New(codes.ResourceExhausted, msg).WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(retry)})
	if err != nil {
		return status.Error(codes.ResourceExhausted, msg)
	}
	return st.Err()
}

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
		return InvalidArgument(ve.Violations)
	case errors.Is(err, app.ErrPermission):
		return status.Error(codes.PermissionDenied, err.Error())
	case errors.Is(err, domain.ErrNotFound):
		return status.Error(codes.NotFound, "complaint not found")
	case errors.Is(err, domain.ErrWithdrawn), errors.Is(err, domain.ErrErased):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, app.ErrRetryLater):
		st, _ := status.New(codes.Unavailable, err.Error()).WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(time.Second)})
		return st.Err()
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "request canceled")
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "deadline exceeded")
	}
	log.ErrorContext(ctx, "intake request failed", "method", method, "err", err)
	return status.Error(codes.Internal, "internal error")
}

package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/kernel"
)

// Status maps a handler's error to the gRPC status the caller gets: the
// one place the kinds of libs/kernel meet gRPC codes (and, through
// HTTPStatus, HTTP). A status error passes unchanged. Anything unknown is
// logged with its method and answered as Internal without its text, which
// could carry what the caller must not see.
func Status(ctx context.Context, log *slog.Logger, method string, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	var (
		invalid *kernel.InvalidError
		pre     *kernel.PreconditionError
		broken  *eventlog.BrokenLink
	)
	switch {
	case errors.As(err, &broken):
		// Not "not found": the stream exists and its history does not hold.
		log.ErrorContext(ctx, "api: stream damaged", "method", method, "error", err)
		return status.Error(codes.DataLoss, fmt.Sprintf("stream damaged at %s version %d (log position %d): %s; an operator should run closeloopctl verify",
			broken.Stream, broken.Version, broken.Position, broken.Reason))
	case errors.As(err, &invalid):
		return InvalidArgument(err.Error(), invalid.Violations...)
	case errors.As(err, &pre):
		return preconditionFailed(err.Error(), pre.Reason, pre.Missing)
	case errors.Is(err, kernel.ErrPrecondition):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, kernel.ErrPermission):
		return status.Error(codes.PermissionDenied, err.Error())
	case errors.Is(err, kernel.ErrNotFound), errors.Is(err, eventlog.ErrNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, kernel.ErrStale), errors.Is(err, eventlog.ErrConflict):
		return status.Error(codes.Aborted, err.Error())
	case errors.Is(err, kernel.ErrRetryLater), errors.Is(err, eventlog.ErrShortRead):
		return retryLater(err.Error(), time.Second)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return status.FromContextError(err).Err()
	}
	log.ErrorContext(ctx, "api: request failed", "method", method, "error", err)
	return status.Error(codes.Internal, "internal error")
}

func preconditionFailed(msg, reason string, missing []string) error {
	st := status.New(codes.FailedPrecondition, msg)
	if len(missing) == 0 {
		return st.Err()
	}
	pf := &errdetails.PreconditionFailure{}
	for _, m := range missing {
		pf.Violations = append(pf.Violations, &errdetails.PreconditionFailure_Violation{Type: "missing", Subject: m, Description: reason})
	}
	if d, err := st.WithDetails(pf); err == nil {
		st = d
	}
	return st.Err()
}

func retryLater(msg string, after time.Duration) error {
	st := status.New(codes.Unavailable, msg)
	if d, err := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(after)}); err == nil {
		st = d
	}
	return st.Err()
}

// statusUnary maps every handler error through Status, so handlers return
// the kernel's kinds and never build a status themselves.
func (s *Server) statusUnary() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		resp, err := handler(ctx, req)
		return resp, Status(ctx, s.log, info.FullMethod, err)
	}
}

// statusStream is statusUnary for streams.
func (s *Server) statusStream() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		return Status(ss.Context(), s.log, info.FullMethod, handler(srv, ss))
	}
}

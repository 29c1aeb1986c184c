package api

import (
	"fmt"
	"math"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/closeloop/closeloop/libs/kernel"
)

// Violation is one thing wrong with a request (kernel.Violation). On the
// wire it is an errdetails.BadRequest.FieldViolation with Field, the rule
// in Reason and the message in Description.
type Violation = kernel.Violation

// InvalidArgument returns a codes.InvalidArgument status carrying the
// violations as errdetails.BadRequest (HTTP 400 with a "violations" list).
func InvalidArgument(msg string, v ...Violation) error {
	st := status.New(codes.InvalidArgument, msg)
	if len(v) == 0 {
		return st.Err()
	}
	br := &errdetails.BadRequest{}
	for _, x := range v {
		br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{
			Field: x.Field, Reason: x.Rule, Description: x.Message,
		})
	}
	withDetails, err := st.WithDetails(br)
	if err != nil {
		return st.Err()
	}
	return withDetails.Err()
}

// Violations returns the field violations carried by err (from
// InvalidArgument), or nil.
func Violations(err error) []Violation {
	st, ok := status.FromError(err)
	if !ok {
		return nil
	}
	var out []Violation
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, fv := range br.GetFieldViolations() {
				out = append(out, Violation{Field: fv.GetField(), Rule: fv.GetReason(), Message: fv.GetDescription()})
			}
		}
	}
	return out
}

// ResourceExhausted returns a codes.ResourceExhausted status telling the
// caller when to retry (errdetails.RetryInfo; HTTP 429 with Retry-After).
func ResourceExhausted(retryAfter time.Duration) error {
	st := status.New(codes.ResourceExhausted, fmt.Sprintf("too many requests, retry in %s", retryAfter.Round(time.Second)))
	withDetails, err := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(retryAfter)})
	if err != nil {
		return st.Err()
	}
	return withDetails.Err()
}

// RetryAfter returns the delay err asks the caller to wait (RetryInfo), if
// any.
func RetryAfter(err error) (time.Duration, bool) {
	st, ok := status.FromError(err)
	if !ok {
		return 0, false
	}
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok && ri.GetRetryDelay() != nil {
			return ri.GetRetryDelay().AsDuration(), true
		}
	}
	return 0, false
}

// retryAfterSeconds rounds up: a client waiting less would be refused again.
func retryAfterSeconds(d time.Duration) int64 {
	return int64(math.Ceil(d.Seconds()))
}

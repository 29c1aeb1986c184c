package kernel

import (
	"errors"
	"fmt"
	"strings"
)

// The kinds of refusal a command or query ends in. Services wrap them
// (fmt.Errorf("...: %w", kernel.ErrNotFound)) with a message that names
// the field or the rule and never echoes personal data; libs/api maps each
// kind to one gRPC code and one HTTP status, in one place.
var (
	// ErrNotFound: the thing named does not exist (NotFound, 404).
	ErrNotFound = errors.New("not found")
	// ErrPrecondition: the request is well formed but the state does not
	// allow it (FailedPrecondition, 409).
	ErrPrecondition = errors.New("not allowed in this state")
	// ErrPermission: the caller may not do this (PermissionDenied, 403).
	ErrPermission = errors.New("permission denied")
	// ErrStale: the caller's expected version is not the stream's, or the
	// stream kept changing under the command (Aborted, 409): read again
	// and retry.
	ErrStale = errors.New("changed meanwhile")
)

// ErrNotReceived refuses a complaint whose stream does not start with
// ComplaintReceived: events published past intake for a complaint that
// was never accepted. It is a kind of ErrNotFound.
var ErrNotReceived = fmt.Errorf("%w: the complaint was never received", ErrNotFound)

// Violation is one thing wrong with a request: the field (a path such as
// "customer.phone"), the rule it breaks ("required", "max_length", ...)
// and a message for people. Messages never echo personal data.
type Violation struct {
	Field   string `json:"field"`
	Rule    string `json:"rule"`
	Message string `json:"message"`
}

// InvalidError is a request refused for its content (InvalidArgument,
// 400, with the violations listed).
type InvalidError struct {
	Violations []Violation
}

// Invalid returns an *InvalidError for the violations.
func Invalid(v ...Violation) error { return &InvalidError{Violations: v} }

func (e *InvalidError) Error() string {
	parts := make([]string, len(e.Violations))
	for i, v := range e.Violations {
		parts[i] = v.Field + ": " + v.Message
	}
	return "invalid request: " + strings.Join(parts, "; ")
}

// ErrRetryLater: the request cannot be taken right now but will be in a
// moment (another writer holds what it needs): Unavailable, 503 with
// Retry-After.
var ErrRetryLater = errors.New("busy, retry shortly")

// PreconditionError is ErrPrecondition naming what is missing (the steps
// a rule requires first), for callers that show a checklist.
type PreconditionError struct {
	Reason  string
	Missing []string
}

func (e *PreconditionError) Error() string {
	if len(e.Missing) == 0 {
		return e.Reason
	}
	return e.Reason + " (missing: " + strings.Join(e.Missing, ", ") + ")"
}

// Is makes errors.Is(err, ErrPrecondition) hold.
func (e *PreconditionError) Is(target error) bool { return target == ErrPrecondition }

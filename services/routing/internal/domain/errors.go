package domain

import (
	"errors"
	"fmt"
	"strings"
)

// ErrNotFound: the complaint (or team, member, solution) does not exist.
var ErrNotFound = errors.New("not found")

// ErrStaleVersion: the command was decided on an older version of the stream.
var ErrStaleVersion = errors.New("stale version")

// Violation names a field, the rule it breaks, and how.
type Violation struct {
	Field, Rule, Message string
}

// InvalidError is bad input: nothing was changed.
type InvalidError struct{ Violations []Violation }

func (e *InvalidError) Error() string {
	parts := make([]string, len(e.Violations))
	for i, v := range e.Violations {
		parts[i] = fmt.Sprintf("%s: %s (%s)", v.Field, v.Message, v.Rule)
	}
	return "invalid argument: " + strings.Join(parts, "; ")
}

func invalid(field, rule, msg string) error {
	return &InvalidError{[]Violation{{field, rule, msg}}}
}

// PreconditionError: the complaint is not in a state that allows the
// command; Missing names what must happen first.
type PreconditionError struct {
	Reason  string
	Missing []string
}

func (e *PreconditionError) Error() string {
	if len(e.Missing) == 0 {
		return "failed precondition: " + e.Reason
	}
	return fmt.Sprintf("failed precondition: %s: missing %s", e.Reason, strings.Join(e.Missing, ", "))
}

func precondition(reason string, missing ...string) error {
	return &PreconditionError{Reason: reason, Missing: missing}
}

// PermissionError: the actor's role does not allow the operation.
type PermissionError struct {
	Actor, Role, Operation, Reason string
}

func (e *PermissionError) Error() string {
	return fmt.Sprintf("permission denied: %s (role %q) may not %s: %s", e.Actor, e.Role, e.Operation, e.Reason)
}

package domain

import (
	"errors"
	"fmt"
	"strings"
)

// Errors a command can be refused with; callers map them to status codes.
var (
	// ErrWrongState: the work order or technician is not in a state that
	// allows the command (FailedPrecondition).
	ErrWrongState = errors.New("not allowed in the current state")
	// ErrNotAssignee: the caller is not the work order's technician
	// (PermissionDenied).
	ErrNotAssignee = errors.New("caller is not the technician of this work order")
	// ErrNotFound: no such work order or technician.
	ErrNotFound = errors.New("not found")
	// ErrNoCapacity: the technician cannot take another job.
	ErrNoCapacity = errors.New("technician has no free capacity")
)

// Violation is one field-level problem with a command: the field, the rule
// it broke and a message that never echoes personal data.
type Violation struct {
	Field   string
	Rule    string
	Message string
}

// ValidationError lists every violation of one command; nothing is decided.
type ValidationError struct{ Violations []Violation }

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Violations))
	for i, v := range e.Violations {
		parts[i] = fmt.Sprintf("%s: %s (%s)", v.Field, v.Message, v.Rule)
	}
	return "invalid command: " + strings.Join(parts, "; ")
}

// violations collects field problems while a command is checked.
type violations []Violation

func (vs *violations) add(field, rule, msg string) {
	*vs = append(*vs, Violation{Field: field, Rule: rule, Message: msg})
}

func (vs violations) err() error {
	if len(vs) == 0 {
		return nil
	}
	return &ValidationError{Violations: vs}
}

package domain

import (
	"errors"
	"strings"
)

// ErrInvalid is wrapped by every *ValidationError: the command is malformed.
var ErrInvalid = errors.New("invalid command")

// ErrPrecondition is wrapped by the errors of a command that is well formed
// but not allowed in the complaint's current state.
var ErrPrecondition = errors.New("failed precondition")

// Precondition failures callers may want to tell apart.
var (
	ErrNotResolved     = preconditionError("complaint is not resolved")
	ErrSurveyAnswered  = preconditionError("survey already answered: a survey takes one answer")
	ErrSurveyExpired   = preconditionError("survey expired")
	ErrSurveyOverTaken = preconditionError("survey belongs to an earlier resolution")
	ErrSurveyClosed    = preconditionError("complaint is closed or withdrawn: the survey takes no more answers")
	ErrTaskDelivered   = preconditionError("feedback task already delivered")
	ErrTaskOverTaken   = preconditionError("feedback task belongs to an earlier resolution")
	ErrVisitCompleted  = preconditionError("return visit already completed")
	ErrWithdrawn       = preconditionError("complaint was withdrawn")
)

type precondition struct{ msg string }

func (p *precondition) Error() string        { return p.msg }
func (p *precondition) Is(target error) bool { return target == ErrPrecondition }

func preconditionError(msg string) error { return &precondition{msg} }

// Violation is one problem with one field of a command.
type Violation struct {
	Field   string
	Rule    string
	Message string
}

// ValidationError lists every problem found with a command.
type ValidationError struct{ Violations []Violation }

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Violations))
	for i, v := range e.Violations {
		parts[i] = v.Field + ": " + v.Message
	}
	return "invalid command: " + strings.Join(parts, "; ")
}

func (e *ValidationError) Is(target error) bool { return target == ErrInvalid }

// violations collects problems; err returns nil when there are none.
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

package domain

import "github.com/closeloop/closeloop/libs/kernel"

// Precondition failures callers may want to tell apart; each is a
// kernel.ErrPrecondition, so libs/api answers FailedPrecondition.
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
func (p *precondition) Is(target error) bool { return target == kernel.ErrPrecondition }

func preconditionError(msg string) error { return &precondition{msg} }

// violations collects what is wrong with a command; err is a
// *kernel.InvalidError listing them all, or nil when there are none.
type violations []kernel.Violation

func (vs *violations) add(field, rule, msg string) {
	*vs = append(*vs, kernel.Violation{Field: field, Rule: rule, Message: msg})
}

func (vs violations) err() error {
	if len(vs) == 0 {
		return nil
	}
	return kernel.Invalid(vs...)
}

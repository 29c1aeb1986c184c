package domain

import (
	"fmt"

	"github.com/closeloop/closeloop/libs/kernel"
)

// Routing refuses with the kernel's kinds of error, which libs/api maps
// to gRPC codes and HTTP statuses in one place; these build them in
// routing's words.

func invalid(field, rule, msg string) error {
	return kernel.Invalid(kernel.Violation{Field: field, Rule: rule, Message: msg})
}

// precondition names what must happen first, for callers that show a
// checklist (the "missing" details of FAILED_PRECONDITION).
func precondition(reason string, missing ...string) error {
	return &kernel.PreconditionError{Reason: reason, Missing: missing}
}

// denied names who was refused what and why; actor ids are staff, not
// customers' personal data.
func denied(a Actor, operation, reason string) error {
	return fmt.Errorf("%w: %s (role %q) may not %s: %s", kernel.ErrPermission, a.ID, a.roleList(), operation, reason)
}

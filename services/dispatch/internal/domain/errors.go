package domain

import (
	"fmt"

	"github.com/closeloop/closeloop/libs/kernel"
)

// Errors a command can be refused with. Each is one of the kernel's kinds,
// which libs/api maps to a status code: the domain says what went wrong,
// never how a caller hears it.
var (
	// ErrWrongState: the work order or technician is not in a state that
	// allows the command.
	ErrWrongState = fmt.Errorf("%w", kernel.ErrPrecondition)
	// ErrNotAssignee: the caller is not the work order's technician.
	ErrNotAssignee = fmt.Errorf("%w: the caller is not the technician of this work order", kernel.ErrPermission)
	// ErrNotFound: no such work order or technician (also a complaint
	// never received: kernel.ErrNotReceived is one).
	ErrNotFound = kernel.ErrNotFound
	// ErrNoCapacity: the technician cannot take another job.
	ErrNoCapacity = fmt.Errorf("%w: the technician has no free capacity", kernel.ErrPrecondition)
)

// Violation is one field-level problem with a command: the field, the rule
// it broke and a message that never echoes personal data.
type Violation = kernel.Violation

// ValidationError lists every violation of one command; nothing is decided.
type ValidationError = kernel.InvalidError

// violations collects field problems while a command is checked.
type violations []Violation

func (vs *violations) add(field, rule, msg string) {
	*vs = append(*vs, Violation{Field: field, Rule: rule, Message: msg})
}

func (vs violations) err() error {
	if len(vs) == 0 {
		return nil
	}
	return kernel.Invalid(vs...)
}

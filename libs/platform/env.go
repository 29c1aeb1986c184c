package platform

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"
)

// Env reads a service's configuration from the environment. Every getter
// returns the parsed value (or the default) and records what is wrong
// with the variable; Err then reports every mistake at once, each naming
// its variable and the rule, so an operator fixes them in one go. A
// service parses each setting once, here, and hands the parsed value on.
type Env struct {
	lookup func(string) (string, bool)
	errs   []error
}

// NewEnv reads the process environment.
func NewEnv() *Env { return &Env{lookup: os.LookupEnv} }

// EnvOf reads vars instead of the process environment (tests).
func EnvOf(vars map[string]string) *Env {
	return &Env{lookup: func(k string) (string, bool) { v, ok := vars[k]; return v, ok }}
}

// Lookup returns the variable's value and whether it is set.
func (e *Env) Lookup(name string) (string, bool) { return e.lookup(name) }

// String returns the variable, or def when unset. A variable set to ""
// counts as set: an address of "" turns a listener off.
func (e *Env) String(name, def string) string {
	if v, ok := e.lookup(name); ok {
		return v
	}
	return def
}

// Int returns the variable as a whole number within [min, max].
func (e *Env) Int(name string, def, min, max int) int {
	v, ok := e.lookup(name)
	if !ok || v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < min || n > max {
		e.Fail(name, fmt.Errorf("%q must be a whole number from %d to %d", v, min, max))
		return def
	}
	return n
}

// Duration returns the variable as a Go duration ("90s", "24h") of at
// least min.
func (e *Env) Duration(name string, def, min time.Duration) time.Duration {
	v, ok := e.lookup(name)
	if !ok || v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < min {
		e.Fail(name, fmt.Errorf("%q must be a duration such as 90s or 24h, at least %s", v, min))
		return def
	}
	return d
}

// Bool returns the variable as 1/true or 0/false.
func (e *Env) Bool(name string, def bool) bool {
	v, ok := e.lookup(name)
	if !ok || v == "" {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		e.Fail(name, fmt.Errorf("%q must be 1 or 0", v))
		return def
	}
	return b
}

// File returns the contents of the file the variable names, or nil when
// it is unset.
func (e *Env) File(name string) []byte {
	path, ok := e.lookup(name)
	if !ok || path == "" {
		return nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		e.Fail(name, err)
		return nil
	}
	return b
}

// Parse hands a set variable to parse, which keeps the parsed value and
// returns what is wrong with it; unset variables are left alone.
func (e *Env) Parse(name string, parse func(string) error) {
	v, ok := e.lookup(name)
	if !ok || v == "" {
		return
	}
	if err := parse(v); err != nil {
		e.Fail(name, err)
	}
}

// Fail records a mistake about the variable name (or a setting read
// another way, such as a file the variable names).
func (e *Env) Fail(name string, err error) {
	if err != nil {
		e.errs = append(e.errs, fmt.Errorf("%s: %w", name, err))
	}
}

// Check records err as is (a reader of several variables, such as
// auth.FromEnv, names them itself).
func (e *Env) Check(err error) {
	if err != nil {
		e.errs = append(e.errs, err)
	}
}

// Err is every mistake recorded, joined; nil when there is none.
func (e *Env) Err() error { return errors.Join(e.errs...) }

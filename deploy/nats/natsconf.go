// Package natsconf hands the bus's accounts and permissions (accounts.conf,
// also included by the cluster's nats-*.conf) to Go code, so that the
// embedded server of `make run` and of the tests runs with exactly the
// deployed ones.
package natsconf

import (
	_ "embed"
	"regexp"
	"slices"
)

// Accounts is accounts.conf: the CLOSELOOP account with one user per
// identity, and the system account.
//
//go:embed accounts.conf
var Accounts string

var passwordVar = regexp.MustCompile(`\$(NATS_([A-Z]+)_PASSWORD)\b`)

// PasswordVars are the variables the configuration takes its passwords
// from (NATS_<USER>_PASSWORD), one per identity, sorted.
func PasswordVars() []string {
	var out []string
	for _, m := range passwordVar.FindAllStringSubmatch(Accounts, -1) {
		if !slices.Contains(out, m[1]) {
			out = append(out, m[1])
		}
	}
	slices.Sort(out)
	return out
}

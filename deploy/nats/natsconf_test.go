package natsconf

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// One source: every node of the cluster includes the file the embedded
// server loads, and every identity has its own password variable.
func TestOneSourceForClusterAndEmbeddedServer(t *testing.T) {
	for _, n := range []string{"nats-1.conf", "nats-2.conf", "nats-3.conf"} {
		b, err := os.ReadFile(n)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), "\ninclude ./accounts.conf") {
			t.Errorf("%s does not include accounts.conf", n)
		}
		if regexp.MustCompile(`(?m)^\s*(accounts|authorization|users|no_auth_user)\b`).Match(b) {
			t.Errorf("%s declares identities of its own: they belong in accounts.conf", n)
		}
	}
	var users []string
	for _, m := range regexp.MustCompile(`user: (\w+)\s*,?\s*password: \$NATS_(\w+)_PASSWORD`).FindAllStringSubmatch(Accounts, -1) {
		if strings.ToUpper(m[1]) != m[2] {
			t.Errorf("user %s takes the password of %s", m[1], m[2])
		}
		users = append(users, "NATS_"+m[2]+"_PASSWORD")
	}
	slices.Sort(users)
	if got := PasswordVars(); !slices.Equal(got, users) || len(users) != len(slices.Compact(slices.Clone(users))) {
		t.Errorf("password variables %v, users %v: want one each", got, users)
	}
	for _, want := range []string{"intake", "routing", "slaclock", "dispatch", "followup", "console", "relay", "adapter", "ops", "admin", "sys"} {
		if !slices.Contains(users, "NATS_"+strings.ToUpper(want)+"_PASSWORD") {
			t.Errorf("no identity %s", want)
		}
	}
}

package intake

import (
	"strings"
	"testing"
	"time"

	"github.com/closeloop/closeloop/libs/auth"
	"github.com/closeloop/closeloop/libs/platform"
)

// TestConfigReportsEveryMistakeAtOnce: an operator sees every bad
// variable, each by name, in one start.
func TestConfigReportsEveryMistakeAtOnce(t *testing.T) {
	_, err := configFrom(platform.EnvOf(map[string]string{
		auth.EnvAuth:              "sometimes",
		"INTAKE_PII_SECRET":       "short",
		"INTAKE_DUPLICATE_WINDOW": "0s",
		"INTAKE_CLAIM_GRACE":      "soon",
		"INTAKE_MAX_DESCRIPTION":  "0",
		"INTAKE_BURST":            "many",
		"INTAKE_RATE":             "-1",
		"INTAKE_MAX_RECEIVED_AGE": "a month",
	}))
	if err == nil {
		t.Fatal("no error")
	}
	for _, name := range []string{"PII_KEK", "INTAKE_PII_SECRET", "INTAKE_DUPLICATE_WINDOW", "INTAKE_MAX_RECEIVED_AGE", "INTAKE_CLAIM_GRACE", "INTAKE_MAX_DESCRIPTION", "INTAKE_BURST", "INTAKE_RATE", auth.EnvAuth} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error does not name %s:\n%v", name, err)
		}
	}
}

func TestConfigParsesTheEnvironment(t *testing.T) {
	c, err := configFrom(platform.EnvOf(map[string]string{
		auth.EnvAuth:              "off",
		"INTAKE_GRPC_ADDR":        ":9001",
		"PII_KEK":                 strings.Repeat("ab", 32),
		"INTAKE_PII_SECRET":       "a-secret-of-twenty-bytes",
		"INTAKE_DUPLICATE_WINDOW": "24h",
		"INTAKE_MAX_ATTACHMENTS":  "0",
		"INTAKE_RATE":             "0",
		"INTAKE_MAX_RECEIVED_AGE": "48h",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.GRPCAddr != ":9001" || c.HTTPAddr != ":8001" || string(c.Secret) != "a-secret-of-twenty-bytes" ||
		c.DuplicateWindow != 24*time.Hour || c.ClaimGrace != 30*time.Second || c.MaxAttachments != 0 || c.RatePerSecond != 0 || c.Authenticator == nil ||
		c.MaxReceivedAge != 48*time.Hour || c.KEKs == nil {
		t.Errorf("config = %+v", c)
	}
}

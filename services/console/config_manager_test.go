package console_test

import (
	"strings"
	"testing"
	"time"

	"github.com/closeloop/closeloop/libs/auth"
	"github.com/closeloop/closeloop/services/console"
)

func TestConfigOfTheDashboardAndStatusLinks(t *testing.T) {
	t.Setenv(auth.EnvTokens, "")
	t.Setenv(auth.EnvTokensFile, "")
	t.Setenv(auth.EnvAuth, "off")
	for k, v := range map[string]string{"CONSOLE_FOLLOWUP_ADDR": "followup:7005", "CONSOLE_SLACLOCK_ADDR": "slaclock:7003",
		"CONSOLE_STATUS_SECRET": strings.Repeat("s", 32), "CONSOLE_STATUS_LINK_TTL": "48h", "CONSOLE_STATUS_TOKEN": "tok",
		"CONSOLE_PUBLIC_URL": "https://desk.example"} {
		t.Setenv(k, v)
	}
	c, err := console.ConfigFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	if c.FollowupAddr != "followup:7005" || c.SLAClockAddr != "slaclock:7003" || string(c.StatusSecret) != strings.Repeat("s", 32) ||
		c.StatusLinkTTL != 48*time.Hour || c.StatusToken != "tok" || c.PublicURL != "https://desk.example" {
		t.Fatalf("config %+v", c)
	}
	// Every mistake at once, each by its variable.
	t.Setenv("CONSOLE_STATUS_SECRET", "short")
	t.Setenv("CONSOLE_STATUS_LINK_TTL", "10m")
	t.Setenv("CONSOLE_PUBLIC_URL", "desk.example")
	_, err = console.ConfigFromEnv()
	for _, name := range []string{"CONSOLE_STATUS_SECRET", "CONSOLE_STATUS_LINK_TTL", "CONSOLE_PUBLIC_URL"} {
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("error %v does not name %s", err, name)
		}
	}
}

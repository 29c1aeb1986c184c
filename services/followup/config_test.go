package followup_test

import (
	"strings"
	"testing"
	"time"

	"github.com/closeloop/closeloop/libs/platform"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
	"github.com/closeloop/closeloop/services/followup"
)

func TestConfigFromEnv(t *testing.T) {
	t.Setenv("CLOSELOOP_AUTH", "off")
	t.Setenv("FOLLOWUP_NO_RESPONSE_AFTER", "72h")
	t.Setenv("FOLLOWUP_RETURN_VISIT_FROM", "l4")
	c, err := followup.ConfigFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	if c.GRPCAddr != ":7005" || c.HTTPAddr != ":8005" || c.Policy.NoResponseAfter != 72*time.Hour ||
		c.Policy.ReturnVisitFrom != eventsv1.Severity_SEVERITY_L4 || c.Policy.ReturnVisitAfter != 30*24*time.Hour || c.KPIFoldAfter != 30*24*time.Hour || c.Auth == nil {
		t.Fatalf("config %+v", c)
	}
}

func TestConfigFromEnvRefuses(t *testing.T) {
	tests := []struct{ name, value, wantInErr string }{
		{"FOLLOWUP_NO_RESPONSE_AFTER", "a week", "FOLLOWUP_NO_RESPONSE_AFTER"},
		{"FOLLOWUP_NO_RESPONSE_AFTER", "-1h", "FOLLOWUP_NO_RESPONSE_AFTER: must be positive"},
		{"FOLLOWUP_RETURN_VISIT_FROM", "L9", "FOLLOWUP_RETURN_VISIT_FROM"},
		{"FOLLOWUP_SURVEY_SECRET", "short", "FOLLOWUP_SURVEY_SECRET: must be at least 32 bytes"},
		{"FOLLOWUP_SURVEY_BASE_URL", "ftp://x", "FOLLOWUP_SURVEY_BASE_URL"},
		{"FOLLOWUP_KPI_TIMEZONE", "Mars/Olympus", "FOLLOWUP_KPI_TIMEZONE"},
		{"FOLLOWUP_SECOND_FEEDBACK_WITHIN", "1h", "FOLLOWUP_SECOND_FEEDBACK_WITHIN"},
		{"FOLLOWUP_KPI_FOLD_AFTER", "48h", "FOLLOWUP_KPI_FOLD_AFTER: must be at least FOLLOWUP_SECOND_FEEDBACK_WITHIN"},
		{"FOLLOWUP_KPI_FOLD_AFTER", "a month", "FOLLOWUP_KPI_FOLD_AFTER"},
	}
	for _, tt := range tests {
		t.Run(tt.name+"="+tt.value, func(t *testing.T) {
			t.Setenv("CLOSELOOP_AUTH", "off")
			t.Setenv(tt.name, tt.value)
			_, err := followup.ConfigFromEnv()
			if err == nil || !strings.Contains(err.Error(), tt.wantInErr) {
				t.Fatalf("err = %v, want one naming %q", err, tt.wantInErr)
			}
			if tt.name == "FOLLOWUP_SURVEY_SECRET" && strings.Contains(err.Error(), tt.value) {
				t.Fatal("the error echoes the secret")
			}
		})
	}
}

// Every mistake is reported at once, each naming its variable.
func TestConfigOfReportsEveryMistake(t *testing.T) {
	_, err := followup.ConfigOf(platform.EnvOf(map[string]string{
		"CLOSELOOP_AUTH":                 "off",
		"FOLLOWUP_NO_RESPONSE_AFTER":     "a week",
		"FOLLOWUP_RETURN_VISIT_FROM":     "L9",
		"FOLLOWUP_KPI_TIMEZONE":          "Mars/Olympus",
		"FOLLOWUP_FIRST_FEEDBACK_WITHIN": "-1h",
	}))
	if err == nil {
		t.Fatal("no error")
	}
	for _, name := range []string{"FOLLOWUP_NO_RESPONSE_AFTER", "FOLLOWUP_RETURN_VISIT_FROM", "FOLLOWUP_KPI_TIMEZONE", "FOLLOWUP_FIRST_FEEDBACK_WITHIN: must be positive"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("err = %v, does not name %s", err, name)
		}
	}
	c, err := followup.ConfigOf(platform.EnvOf(map[string]string{"CLOSELOOP_AUTH": "off", "FOLLOWUP_KPI_TIMEZONE": "Europe/Paris"}))
	if err != nil || c.KPILocation == nil || c.KPILocation.String() != "Europe/Paris" {
		t.Fatalf("KPI location %v, %v; want Europe/Paris, parsed once", c.KPILocation, err)
	}
}

package intake_test

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/closeloop/closeloop/libs/auth"
	intakev1 "github.com/closeloop/closeloop/proto/gen/closeloop/intake/v1"
)

var (
	readmeCurl = regexp.MustCompile(`(?s)curl -sS -X POST localhost:8001(\S+) \\\s+-H 'Authorization: Bearer (\S+)'.*?-d '(.*?)'`)
	readmeNATS = regexp.MustCompile(`(?s)nats req (\S+) -H 'Authorization:Bearer (\S+)' \\\s+'(.*?)'`)
)

// TestREADMEExamplesWork runs the curl and nats commands of this README and
// the project's, as written, against a service with the documented
// development tokens.
func TestREADMEExamplesWork(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	project, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if len(readmeCurl.FindAllString(string(project), -1)) == 0 {
		t.Fatal("no curl example in the project's README")
	}
	readme = append(readme, project...)
	tokens, err := os.ReadFile(devTokensFile)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, false)
	// The examples splice in the shell's current time; the service runs on
	// the test's clock.
	readme = bytes.ReplaceAll(readme, []byte(`'"$(date -u +%FT%TZ)"'`), []byte(e.now.Add(-time.Minute).Format(time.RFC3339)))
	cfg := testConfig(t)
	if cfg.Authenticator, err = auth.ParseTokens(tokens); err != nil {
		t.Fatal(err)
	}
	r := e.start(t, cfg, nil)

	curls := readmeCurl.FindAllStringSubmatch(string(readme), -1)
	if len(curls) < 2 {
		t.Fatalf("found %d curl examples, want the submission and the read", len(curls))
	}
	var id string
	for _, c := range curls {
		path, token, body := c[1], c[2], strings.ReplaceAll(c[3], "<the complaintId answered above>", id)
		req, _ := http.NewRequest(http.MethodPost, "http://"+r.svc.HTTPAddr()+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("curl %s: HTTP %d %s", path, resp.StatusCode, b)
		}
		var sub intakev1.SubmitComplaintResponse
		if id == "" && protojson.Unmarshal(b, &sub) == nil {
			id = sub.GetComplaintId()
		}
	}
	if id == "" {
		t.Fatal("the first curl example answered no complaintId")
	}

	n := readmeNATS.FindStringSubmatch(string(readme))
	if n == nil {
		t.Fatal("no nats req example")
	}
	msg := nats.NewMsg(n[1])
	msg.Header.Set("Authorization", "Bearer "+n[2])
	msg.Data = []byte(n[3])
	rep, err := e.nc.RequestMsg(msg, 5*time.Second)
	var out intakev1.SubmitComplaintResponse
	if err != nil || rep.Header.Get(intakeErrorHeader) != "" || protojson.Unmarshal(rep.Data, &out) != nil || !out.GetCreated() {
		t.Fatalf("nats req: %v %v %s", err, rep.Header, rep.Data)
	}
}

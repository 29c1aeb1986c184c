// Package deploy_test checks what can be checked of the deployment files on a
// machine with no Docker engine or Kubernetes: docker-compose.yml, the
// Kubernetes manifests and the NATS permissions, against the services' code
// and the event catalogue.
package deploy_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

// services and their default ports, as the README and the runner give them
// (grpc 0: the service has no gRPC face, only HTTP).
var services = map[string]struct{ grpc, http int }{
	"intake":   {7001, 8001},
	"routing":  {7002, 8002},
	"slaclock": {7003, 8003},
	"dispatch": {7004, 8004},
	"followup": {7005, 8005},
	"console":  {7090, 8090},
}

// producerByRange is the envelope's field-number convention (envelope.proto).
func producerOf(fieldNumber int) string {
	switch fieldNumber / 100 {
	case 1:
		return "intake"
	case 2:
		return "routing"
	case 3:
		return "slaclock"
	case 4:
		return "dispatch"
	case 5:
		return "followup"
	}
	return ""
}

// envVarsReadBy collects the environment variable names a module's non-test
// Go code mentions as string literals (os.Getenv, LookupEnv or a helper):
// a deployment file that sets a variable no code reads is a typo.
func envVarsReadBy(t *testing.T, dirs ...string) map[string]bool {
	t.Helper()
	name := regexp.MustCompile(`^[A-Z][A-Z0-9_]{2,}$`)
	vars := map[string]bool{}
	for _, dir := range dirs {
		err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") || strings.HasSuffix(path, ".pb.go") {
				return nil
			}
			f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
			if err != nil {
				return err
			}
			ast.Inspect(f, func(n ast.Node) bool {
				if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING {
					if s, err := strconv.Unquote(lit.Value); err == nil && name.MatchString(s) {
						vars[s] = true
					}
				}
				return true
			})
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return vars
}

type compose struct {
	Services map[string]struct {
		Build struct {
			Dockerfile string            `yaml:"dockerfile"`
			Args       map[string]string `yaml:"args"`
		} `yaml:"build"`
		Environment map[string]string `yaml:"environment"`
		Command     []string          `yaml:"command"`
		Profiles    []string          `yaml:"profiles"`
		Ports       []string          `yaml:"ports"`
		Volumes     []string          `yaml:"volumes"`
	} `yaml:"services"`
}

func readYAML(t *testing.T, path string, into any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, into); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func portOf(addr string) int {
	_, p, _ := strings.Cut(addr, ":")
	n, _ := strconv.Atoi(p)
	return n
}

func TestComposeRunsEveryServiceWithItsOwnConfiguration(t *testing.T) {
	var c compose
	readYAML(t, "../docker-compose.yml", &c)
	for _, n := range []string{"nats-1", "nats-2", "nats-3", "otel-collector", "jaeger", "kurrentdb"} {
		if _, ok := c.Services[n]; !ok {
			t.Errorf("docker-compose.yml: service %q missing", n)
		}
	}
	for i := 1; i <= 3; i++ {
		n := "nats-" + strconv.Itoa(i)
		want := "/etc/nats/" + n + ".conf"
		if !slices.Contains(c.Services[n].Command, want) {
			t.Errorf("%s: command %v does not load %s", n, c.Services[n].Command, want)
		}
		if _, err := os.Stat(filepath.Join("nats", n+".conf")); err != nil {
			t.Errorf("%s: %v", n, err)
		}
	}
	for name, ports := range services {
		s, ok := c.Services[name]
		if !ok {
			t.Errorf("docker-compose.yml: service %q missing", name)
			continue
		}
		if s.Build.Args["SERVICE"] != name {
			t.Errorf("%s: build arg SERVICE = %q", name, s.Build.Args["SERVICE"])
		}
		if _, err := os.Stat(filepath.Join("..", "services", name, "cmd", name, "main.go")); err != nil {
			t.Errorf("%s: the Dockerfile builds ./services/%s/cmd/%s: %v", name, name, name, err)
		}
		known := envVarsReadBy(t, filepath.Join("..", "services", name), filepath.Join("..", "libs"))
		for k := range s.Environment {
			if !known[k] {
				t.Errorf("%s: environment variable %s is read by no code of the service or libs", name, k)
			}
		}
		up := strings.ToUpper(name)
		if got, set := s.Environment[up+"_GRPC_ADDR"]; ports.grpc == 0 && set {
			t.Errorf("%s: %s_GRPC_ADDR=%q, but the service has no gRPC face", name, up, got)
		} else if got := portOf(got); ports.grpc != 0 && got != ports.grpc {
			t.Errorf("%s: %s_GRPC_ADDR port %d, want %d", name, up, got, ports.grpc)
		}
		if got := portOf(s.Environment[up+"_HTTP_ADDR"]); got != ports.http {
			t.Errorf("%s: %s_HTTP_ADDR port %d, want %d", name, up, got, ports.http)
		}
		if !strings.Contains(s.Environment["NATS_URL"], "nats://"+name+":") {
			t.Errorf("%s: NATS_URL does not log in as NATS user %q", name, name)
		}
		for _, p := range s.Ports {
			if !strings.Contains(p, "-") {
				t.Errorf("%s: published port %q is a single host port: --scale would collide", name, p)
			}
		}
	}
}

type manifest struct {
	Kind     string `yaml:"kind"`
	Metadata struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
	Spec struct {
		Replicas int `yaml:"replicas"`
		Template struct {
			Spec struct {
				SecurityContext struct {
					RunAsNonRoot bool `yaml:"runAsNonRoot"`
				} `yaml:"securityContext"`
				Containers []struct {
					Name  string `yaml:"name"`
					Ports []struct {
						Name          string `yaml:"name"`
						ContainerPort int    `yaml:"containerPort"`
					} `yaml:"ports"`
					Args []string `yaml:"args"`
					Env  []struct {
						Name  string `yaml:"name"`
						Value string `yaml:"value"`
					} `yaml:"env"`
					VolumeMounts []struct {
						Name      string `yaml:"name"`
						MountPath string `yaml:"mountPath"`
					} `yaml:"volumeMounts"`
					ReadinessProbe probe `yaml:"readinessProbe"`
					LivenessProbe  probe `yaml:"livenessProbe"`
				} `yaml:"containers"`
				Volumes []struct {
					Name   string `yaml:"name"`
					Secret struct {
						SecretName string `yaml:"secretName"`
						Items      []struct {
							Key  string `yaml:"key"`
							Path string `yaml:"path"`
						} `yaml:"items"`
					} `yaml:"secret"`
				} `yaml:"volumes"`
			} `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

// probe is a container's readiness or liveness probe: gRPC health, or an
// HTTP GET for a service with no gRPC face.
type probe struct {
	GRPC struct {
		Port int `yaml:"port"`
	} `yaml:"grpc"`
	HTTPGet struct {
		Path string `yaml:"path"`
		Port int    `yaml:"port"`
	} `yaml:"httpGet"`
}

// TestKubernetesDeploymentPerServiceProbesItsHealth: gRPC health where the
// service has a gRPC face, else (and for the console) its HTTP /readyz and
// /healthz.
func TestKubernetesDeploymentPerServiceProbesItsHealth(t *testing.T) {
	for name, ports := range services {
		b, err := os.ReadFile(filepath.Join("k8s", name+".yaml"))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		dec := yaml.NewDecoder(strings.NewReader(string(b)))
		kinds := map[string]bool{}
		for {
			var m manifest
			if err := dec.Decode(&m); err != nil {
				break
			}
			kinds[m.Kind] = true
			if m.Kind != "Deployment" {
				continue
			}
			if m.Metadata.Name != name || len(m.Spec.Template.Spec.Containers) != 1 {
				t.Errorf("%s: deployment %q with %d containers", name, m.Metadata.Name, len(m.Spec.Template.Spec.Containers))
				continue
			}
			if !m.Spec.Template.Spec.SecurityContext.RunAsNonRoot {
				t.Errorf("%s: pod may run as root", name)
			}
			ctr := m.Spec.Template.Spec.Containers[0]
			// The console is probed on its pages' face: its /healthz answers
			// while its view is rebuilt, gRPC health does not.
			if ports.grpc == 0 || name == "console" {
				ready, live := ctr.ReadinessProbe.HTTPGet, ctr.LivenessProbe.HTTPGet
				if ready.Path != "/readyz" || ready.Port != ports.http || live.Path != "/healthz" || live.Port != ports.http {
					t.Errorf("%s: HTTP probes %s on %d and %s on %d, want /readyz and /healthz on %d", name, ready.Path, ready.Port, live.Path, live.Port, ports.http)
				}
			} else if ctr.ReadinessProbe.GRPC.Port != ports.grpc || ctr.LivenessProbe.GRPC.Port != ports.grpc {
				t.Errorf("%s: gRPC health probes on %d/%d, want %d", name, ctr.ReadinessProbe.GRPC.Port, ctr.LivenessProbe.GRPC.Port, ports.grpc)
			}
			var containerPorts []int
			for _, p := range ctr.Ports {
				containerPorts = append(containerPorts, p.ContainerPort)
			}
			for _, want := range []int{ports.grpc, ports.http} {
				if want != 0 && !slices.Contains(containerPorts, want) {
					t.Errorf("%s: container ports %v lack %d", name, containerPorts, want)
				}
			}
			known := envVarsReadBy(t, filepath.Join("..", "services", name), filepath.Join("..", "libs"))
			for _, e := range ctr.Env {
				if !known[e.Name] {
					t.Errorf("%s: env %s is read by no code of the service or libs", name, e.Name)
				}
			}
		}
		if !kinds["Deployment"] || !kinds["Service"] {
			t.Errorf("%s: want a Deployment and a Service, got %v", name, kinds)
		}
	}
}

// kindsWritten are the entity kinds whose streams each service appends to.
var kindsWritten = map[string][]string{
	"intake":   {"complaint"},
	"routing":  {"complaint", "team"},
	"slaclock": {"complaint", "policy"},
	"dispatch": {"complaint", "technician"},
	"followup": {"complaint"},
	"console":  nil, // reads only: agents' actions go through routing
}

// TestNATSPermissionsFollowTheCatalogue: each service may publish on the
// streams of exactly the kinds it writes, every catalogue event has a
// producer, no one may delete or purge the log, and every service may use
// the snapshot store; the console publishes no event. The subject (events.<kind>.<id>) no longer names the
// event type: which producer writes which type is for event signatures.
func TestNATSPermissionsFollowTheCatalogue(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("nats", "accounts.conf"))
	if err != nil {
		t.Fatal(err)
	}
	conf := string(b)
	kinds := map[string][]string{}
	userRe := regexp.MustCompile(`(?s)user: (\w+)\s+password: \$NATS_\w+_PASSWORD\s+permissions: \{\s+publish: \{\s+allow: \[(.*?)\]\s+deny: \[(.*?)\]`)
	for _, m := range userRe.FindAllStringSubmatch(conf, -1) {
		user, allow, deny := m[1], m[2], m[3]
		for _, s := range regexp.MustCompile(`"events\.([^"]*)"`).FindAllStringSubmatch(allow, -1) {
			k, ok := strings.CutSuffix(s[1], ".*")
			if _, svc := services[user]; svc && (!ok || strings.ContainsAny(k, "*>.")) {
				t.Errorf("user %s may publish on events.%s, want events.<kind>.* only", user, s[1])
			}
			kinds[user] = append(kinds[user], k)
		}
		denies := []string{"$JS.API.STREAM.DELETE.>", "$JS.API.STREAM.MSG.DELETE.>"}
		if user == "intake" {
			// Intake's erasure deletes a PII key's message securely: it may
			// delete there and nowhere else.
			denies = []string{"$JS.API.STREAM.DELETE.>", "$JS.API.STREAM.MSG.DELETE.EVENTS", "$JS.API.STREAM.MSG.DELETE.DEADLETTER"}
			if n := strings.Count(allow, "$JS.API.STREAM.MSG.DELETE."); n != 1 || !strings.Contains(allow, `"$JS.API.STREAM.MSG.DELETE.KV_PII_KEYS"`) {
				t.Errorf("user intake: may delete messages beyond KV_PII_KEYS")
			}
		} else if strings.Contains(allow, `"$KV.PII_KEYS.`) {
			t.Errorf("user %s may write, overwrite or purge a PII key: only intake may", user)
		}
		for _, d := range denies {
			if !strings.Contains(deny, `"`+d+`"`) {
				t.Errorf("user %s: deny lacks %s", user, d)
			}
		}
		if !strings.Contains(deny, `"$JS.API.STREAM.PURGE.EVENTS"`) && !strings.Contains(deny, `"$JS.API.STREAM.PURGE.>"`) {
			t.Errorf("user %s may purge the event log", user)
		}
		if _, svc := services[user]; !svc {
			continue
		}
		if len(kindsWritten[user]) == 0 {
			// A reader keeps nothing in a bucket and may not read the private ones.
			if strings.Contains(allow, `"$KV.`) || strings.Contains(allow, `.KV_`) {
				t.Errorf("user %s may write a KV bucket", user)
			}
			if !strings.Contains(deny, `"$JS.API.DIRECT.GET.KV_PII_KEYS"`) || !strings.Contains(deny, `"$JS.API.DIRECT.GET.KV_INTAKE_SECRETS"`) {
				t.Errorf("user %s may read the PII keys or intake's secrets", user)
			}
		}
		// What the object store client (nats.go jetstream/object.go) calls
		// beyond the rights every service has already: create or update the
		// bucket's stream, publish chunks and metadata, purge the chunks of
		// a replaced object.
		for _, need := range []string{"$JS.API.STREAM.CREATE.OBJ_SNAPSHOTS", "$JS.API.STREAM.UPDATE.OBJ_SNAPSHOTS",
			"$JS.API.STREAM.PURGE.OBJ_SNAPSHOTS", "$O.SNAPSHOTS.>", "$JS.API.STREAM.INFO.>", "$JS.API.DIRECT.GET.>", "$JS.API.CONSUMER.>", "$JS.FC.>"} {
			if !strings.Contains(allow, `"`+need+`"`) {
				t.Errorf("user %s: allow lacks %s (snapshot store)", user, need)
			}
		}
		if strings.Contains(deny, `"$JS.API.STREAM.PURGE.>"`) {
			t.Errorf("user %s: deny PURGE.> also refuses the snapshot store's purge of replaced chunks", user)
		}
	}
	oneof := (&eventsv1.Envelope{}).ProtoReflect().Descriptor().Oneofs().ByName("payload")
	for i := 0; i < oneof.Fields().Len(); i++ {
		f := oneof.Fields().Get(i)
		if producerOf(int(f.Number())) == "" {
			t.Errorf("event %s: field number %d is outside every producer's range", f.Message().Name(), f.Number())
		}
	}
	for svc := range services {
		got := kinds[svc]
		sort.Strings(got)
		if !slices.Equal(got, kindsWritten[svc]) {
			t.Errorf("%s may publish on the streams of %v, it writes %v", svc, got, kindsWritten[svc])
		}
	}
	for _, reader := range []string{"ops", "console"} {
		if regexp.MustCompile(`user: ` + reader + `\s[^}]*allow: \[[^\]]*"events\.`).MatchString(conf) {
			t.Errorf("the %s user may publish events", reader)
		}
	}
}

// Every password the NATS accounts read has a line in the example .env:
// a cluster started from it would otherwise fail on the missing variable.
func TestExampleEnvSetsEveryNATSPassword(t *testing.T) {
	accounts, err := os.ReadFile("nats/accounts.conf")
	if err != nil {
		t.Fatal(err)
	}
	example, err := os.ReadFile("compose.env.example")
	if err != nil {
		t.Fatal(err)
	}
	vars := regexp.MustCompile(`\$(NATS_\w+_PASSWORD)`).FindAllStringSubmatch(string(accounts), -1)
	if len(vars) == 0 {
		t.Fatal("accounts.conf reads no password variable")
	}
	for _, v := range vars {
		if !regexp.MustCompile(`(?m)^` + v[1] + `=.+`).Match(example) {
			t.Errorf("compose.env.example does not set %s, which accounts.conf reads", v[1])
		}
	}
}

// signingEnv are the event-signing variables (libs/platform/signing.go).
const (
	envSigningKey = "CLOSELOOP_SIGNING_KEY_FILE"
	envSigners    = "CLOSELOOP_SIGNERS_FILE"
)

// wantSigning checks a service's signing variables: a writer signs with
// its own key (<service>.key, as closeloopctl signing-keys names it) and
// every service verifies with the keyring; the console has no key.
func wantSigning(t *testing.T, where, name string, env map[string]string) {
	t.Helper()
	if !strings.HasSuffix(env[envSigners], "/signers.json") {
		t.Errorf("%s: %s: %s=%q, want the keyring signers.json: nothing would verify", where, name, envSigners, env[envSigners])
	}
	key, set := env[envSigningKey]
	switch {
	case len(kindsWritten[name]) == 0 && set:
		t.Errorf("%s: %s writes no event but has a signing key %q", where, name, key)
	case len(kindsWritten[name]) > 0 && !strings.HasSuffix(key, "/"+name+".key"):
		t.Errorf("%s: %s: %s=%q, want its own key %s.key: its events would be unsigned", where, name, envSigningKey, key, name)
	}
}

// TestEveryDeploymentSignsVerifiesAndAnchors: in docker-compose.yml and in
// deploy/k8s every writing service signs with its own key from the
// generated directory (compose) or the closeloop-signing Secret (k8s),
// every service and the console verify with the keyring, and an anchor
// writer (closeloopctl anchor as admin) runs beside them.
func TestEveryDeploymentSignsVerifiesAndAnchors(t *testing.T) {
	var c compose
	readYAML(t, "../docker-compose.yml", &c)
	for name := range services {
		s := c.Services[name]
		wantSigning(t, "docker-compose.yml", name, s.Environment)
		for _, path := range []string{s.Environment[envSigners], s.Environment[envSigningKey]} {
			mounted := path == ""
			for _, v := range s.Volumes {
				host, ctr, _ := strings.Cut(strings.TrimSuffix(v, ":ro"), ":")
				if strings.HasPrefix(host, "./deploy/secrets") && strings.HasPrefix(path, ctr+"/") {
					mounted = true
				}
			}
			if !mounted {
				t.Errorf("docker-compose.yml: %s: %s is on no volume from ./deploy/secrets", name, path)
			}
		}
	}
	anchors := 0
	for name, s := range c.Services {
		if !slices.Contains(s.Command, "anchor") {
			continue
		}
		anchors++
		if i := slices.Index(s.Command, "-user"); i < 0 || i+1 >= len(s.Command) || s.Command[i+1] != "admin" {
			t.Errorf("docker-compose.yml: %s: %v does not anchor as admin (the only identity that may)", name, s.Command)
		}
		pkg := s.Build.Args["PACKAGE"]
		if _, err := os.Stat(filepath.Join("..", pkg, "anchorcmd.go")); pkg == "" || err != nil {
			t.Errorf("docker-compose.yml: %s: builds %q, want ./cmd/closeloopctl (%v)", name, pkg, err)
		}
		if !strings.Contains(s.Environment["NATS_PASSWORD"], "NATS_ADMIN_PASSWORD") {
			t.Errorf("docker-compose.yml: %s: NATS_PASSWORD is not admin's", name)
		}
	}
	if anchors != 1 {
		t.Errorf("docker-compose.yml: %d services run closeloopctl anchor, want one", anchors)
	}
	dockerfile, err := os.ReadFile(filepath.Join("docker", "Dockerfile"))
	if err != nil || !strings.Contains(string(dockerfile), "${PACKAGE}") {
		t.Errorf("deploy/docker/Dockerfile does not build the PACKAGE argument (closeloopctl for the anchor): %v", err)
	}

	files, err := filepath.Glob(filepath.Join("k8s", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	anchors = 0
	signed := map[string]bool{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(strings.NewReader(string(b)))
		for {
			var m manifest
			if err := dec.Decode(&m); err != nil {
				break
			}
			if m.Kind != "Deployment" || len(m.Spec.Template.Spec.Containers) != 1 {
				continue
			}
			ctr, pod := m.Spec.Template.Spec.Containers[0], m.Spec.Template.Spec
			if slices.Contains(ctr.Args, "anchor") {
				anchors++
				if i := slices.Index(ctr.Args, "-user"); i < 0 || i+1 >= len(ctr.Args) || ctr.Args[i+1] != "admin" || m.Spec.Replicas != 1 {
					t.Errorf("%s: anchor %v with %d replicas, want -user admin and one replica", f, ctr.Args, m.Spec.Replicas)
				}
				continue
			}
			name := m.Metadata.Name
			if _, ok := services[name]; !ok {
				continue
			}
			env := map[string]string{}
			for _, e := range ctr.Env {
				env[e.Name] = e.Value
			}
			wantSigning(t, f, name, env)
			// Each file must come from the closeloop-signing Secret's volume.
			files := map[string]bool{}
			for _, vm := range ctr.VolumeMounts {
				for _, v := range pod.Volumes {
					if v.Name == vm.Name && v.Secret.SecretName == "closeloop-signing" {
						for _, it := range v.Secret.Items {
							files[vm.MountPath+"/"+it.Path] = true
						}
					}
				}
			}
			for _, path := range []string{env[envSigners], env[envSigningKey]} {
				if path != "" && !files[path] {
					t.Errorf("%s: %s: %s is not a file of the closeloop-signing Secret's volume (%v)", f, name, path, files)
				}
			}
			signed[name] = true
		}
	}
	for name := range services {
		if !signed[name] {
			t.Errorf("deploy/k8s: no Deployment %s to check for signing", name)
		}
	}
	if anchors != 1 {
		t.Errorf("deploy/k8s: %d Deployments run closeloopctl anchor, want one", anchors)
	}
}

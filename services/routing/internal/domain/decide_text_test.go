package domain

import (
	"os"
	"strings"
	"testing"

	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
	"github.com/closeloop/closeloop/services/routing/internal/classifier"
)

const (
	onSite, remote, noDispatch = eventsv1.ServiceMode_SERVICE_MODE_ON_SITE, eventsv1.ServiceMode_SERVICE_MODE_REMOTE, eventsv1.ServiceMode_SERVICE_MODE_UNSPECIFIED
)

// TestIssueExamples: the plain descriptions the keyword rules got wrong
// (OTHER / L1 / general), none of them in the training set.
func TestIssueExamples(t *testing.T) {
	p := shippedPolicy(t)
	data, err := os.ReadFile("../../data/complaints.tsv")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		text     string
		cat      eventsv1.Category
		sev      eventsv1.Severity
		pri      eventsv1.Priority
		dispatch eventsv1.ServiceMode
	}{
		{"空调外机运行时突然冒出火花,还有焦糊味", pq, l4, urg, onSite},
		{"电视开机就黑屏,完全无法使用", pq, l2, imp, onSite},
		{"安装师傅约好的时间两次都没来", svc, l2, imp, onSite},
		{"空调开机十分钟后自动关机", pq, l2, imp, onSite},
		{"The outdoor AC unit threw sparks and now smells burnt", pq, l4, urg, onSite},
		{"手机APP绑定不了扫地机，一直提示网络错误", pq, l2, imp, remote},
		{"发票抬头开错了，麻烦重新开一张", price, l1, gen, noDispatch},
	} {
		t.Run(tc.text, func(t *testing.T) {
			if strings.Contains(string(data), tc.text) {
				t.Fatal("in the training set: the test would prove nothing")
			}
			got := p.Decide(ClassifyInput{Text: tc.text, Description: tc.text, Channel: phone, Tier: regular})
			if got.Category != tc.cat || got.Severity != tc.sev || got.Priority != tc.pri || got.Dispatch != tc.dispatch {
				t.Errorf("got %s/%s/%s/%s, want %s/%s/%s/%s (rules %v, features %v)",
					CategoryName(got.Category), SeverityName(got.Severity), PriorityName(got.Priority), DispatchName(got.Dispatch),
					CategoryName(tc.cat), SeverityName(tc.sev), PriorityName(tc.pri), DispatchName(tc.dispatch), got.RulesFired, got.Deciding)
			}
			if !strings.HasPrefix(got.ModelVersion, "classifier.v1+") || got.NeedsTriage || got.Confidence < 0.5 || len(got.Deciding) == 0 {
				t.Errorf("model %q confidence %.2f triage %v features %v", got.ModelVersion, got.Confidence, got.NeedsTriage, got.Deciding)
			}
		})
	}
}

// The rules only raise: whatever the model says, the decided severity and
// priority are at least the model's, and at least every fired rule's.
func TestFloorsOnlyRaise(t *testing.T) {
	p := shippedPolicy(t)
	texts := []string{"电视开机就黑屏", "冒烟了，我要找律师", "the courier lost it", "优惠券没用上", "工厂停产了"}
	for _, text := range texts {
		for _, c := range []string{"product_quality", "other"} {
			for _, s := range []string{"L1", "L2", "L3", "L4"} {
				for _, pr := range []string{"general", "important", "urgent"} {
					pred := classifier.Prediction{Category: classifier.Label{Class: c}, Severity: classifier.Label{Class: s}, Priority: classifier.Label{Class: pr}, Dispatch: classifier.Label{Class: "none"}, Confidence: 0.9}
					got := p.decide(ClassifyInput{Text: text, Description: text}, pred, 0.5)
					ms, _ := ParseSeverity(s)
					mp, _ := ParsePriority(pr)
					f := p.floors(ClassifyInput{Text: text, Description: text})
					if got.Severity < ms || got.Severity < f.severity || got.Priority < mp || got.Priority < f.priority {
						t.Errorf("%q with model %s/%s: decided %s/%s, floors %s/%s", text, s, pr,
							SeverityName(got.Severity), PriorityName(got.Priority), SeverityName(f.severity), PriorityName(f.priority))
					}
					if CategoryName(got.Category) != c {
						t.Errorf("%q: category %s, the model said %s", text, CategoryName(got.Category), c)
					}
				}
			}
		}
	}
}

// Below the threshold a classification goes to a person; the same text
// gives the same verdict.
func TestTriageThresholdAndDeterminism(t *testing.T) {
	p := shippedPolicy(t)
	text := "东西有点问题"
	low := p.Decide(ClassifyInput{Text: text, Description: text})
	if low.Confidence <= 0 || low.Confidence >= 1 {
		t.Fatalf("confidence %v", low.Confidence)
	}
	strict := p.WithClassifier(Classifier{Model: p.Classifier().Model, TriageBelow: 1})
	lax := p.WithClassifier(Classifier{Model: p.Classifier().Model, TriageBelow: 0})
	if !strict.Decide(ClassifyInput{Text: text, Description: text}).NeedsTriage || lax.Decide(ClassifyInput{Text: text, Description: text}).NeedsTriage {
		t.Fatal("threshold not applied")
	}
	again := p.Decide(ClassifyInput{Text: text, Description: text})
	if again.Category != low.Category || again.Confidence != low.Confidence || strings.Join(again.Deciding, ",") != strings.Join(low.Deciding, ",") {
		t.Fatalf("same text, other verdict: %+v %+v", low, again)
	}
	// Without a model the rules alone decide, as before.
	rulesOnly, err := ParsePolicy(mustRead(t, "../../policy/classification.v2.json"))
	if err != nil {
		t.Fatal(err)
	}
	if got := rulesOnly.Decide(ClassifyInput{Text: "冒烟了"}); got.Severity != l4 || got.ModelVersion != "" {
		t.Fatalf("rules alone: %+v", got)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The model reads the description, what it was trained on; the rules read
// the customer's request too. A request to come and repair the unit
// ("上门维修") once turned a product fault into a service complaint.
func TestTheRequestFeedsTheRulesNotTheModel(t *testing.T) {
	p := shippedPolicy(t)
	desc := "空调开机十分钟后自动关机，现在无法开机"
	got := p.Decide(ClassifyInput{Text: desc + "\n上门维修", Description: desc})
	if got.Category != eventsv1.Category_CATEGORY_PRODUCT_QUALITY {
		t.Errorf("category %s, want product_quality (features %v)", CategoryName(got.Category), got.Deciding)
	}
	legal := p.Decide(ClassifyInput{Text: desc + "\n不修好我就起诉你们", Description: desc})
	if legal.Severity < eventsv1.Severity_SEVERITY_L3 || len(legal.RulesFired) == 0 {
		t.Errorf("a legal threat in the request: %s, rules %v", SeverityName(legal.Severity), legal.RulesFired)
	}
}

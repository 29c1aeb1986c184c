package domain

import (
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
	"github.com/closeloop/closeloop/services/routing/internal/classifier"
)

// DefaultTriageConfidence: a verdict less sure than this goes to a person
// (ROUTING_TRIAGE_CONFIDENCE; README "Classifier" has what it flags).
const DefaultTriageConfidence = 0.5

// Classifier is the text model and the confidence under which its verdict
// goes to a person to triage.
type Classifier struct {
	Model *classifier.Model
	// TriageBelow: a confidence under it flags the complaint for triage.
	TriageBelow float64
}

// WithClassifier is the policy deciding with a text model (Decide).
func (p *Policy) WithClassifier(cl Classifier) *Policy {
	q := *p
	q.classifier = cl
	return &q
}

// Classifier is the text model the policy decides with (nil model: none).
func (p *Policy) Classifier() Classifier { return p.classifier }

// Decide classifies a complaint by the text model, then the policy's rules
// as floors: a rule can only raise the model's severity and priority
// (safety and legal lexicons, major loss), may set the category or the
// dispatch, and channel, tier and repeat raise the priority after. On the
// text's own verdict, before those raises, L4 is always urgent and urgent
// at least L3 (domain.md §2: urgent is safety, legal risk, major loss).
// The same input and model give the same verdict.
func (p *Policy) Decide(in ClassifyInput) Classification {
	if p.classifier.Model == nil {
		return p.Classify(in)
	}
	return p.decide(in, p.classifier.Model.Predict(in.Description), p.classifier.TriageBelow)
}

func (p *Policy) decide(in ClassifyInput, pred classifier.Prediction, triageBelow float64) Classification {
	f := p.floors(in)
	cat, err := ParseCategory(pred.Category.Class)
	if err != nil {
		cat = p.defaults.Category
	}
	if f.category != eventsv1.Category_CATEGORY_UNSPECIFIED {
		cat = f.category
	}
	sev, err := ParseSeverity(pred.Severity.Class)
	if err != nil {
		sev = p.defaults.Severity
	}
	pri, err := ParsePriority(pred.Priority.Class)
	if err != nil {
		pri = p.defaults.Priority
	}
	sev, pri = max(sev, f.severity), max(pri, f.priority)
	if sev == eventsv1.Severity_SEVERITY_L4 {
		pri = eventsv1.Priority_PRIORITY_URGENT
	}
	if pri == eventsv1.Priority_PRIORITY_URGENT {
		sev = max(sev, eventsv1.Severity_SEVERITY_L3)
	}
	dispatch, _ := ParseDispatch(pred.Dispatch.Class)
	if f.dispatch != eventsv1.ServiceMode_SERVICE_MODE_UNSPECIFIED {
		dispatch = f.dispatch
	}
	return Classification{
		Category: cat, Severity: sev, Priority: RaisePriority(pri, f.raise), RulesFired: f.fired,
		ModelVersion: pred.Version, Confidence: pred.Confidence, Deciding: pred.Deciding,
		NeedsTriage: pred.Confidence < triageBelow, Dispatch: dispatch,
	}
}

// FloorAdjust is the policy's floors applied to a model's prediction of a
// text alone (no channel, tier or repeat): what cross-validation measures.
func (p *Policy) FloorAdjust(triageBelow float64) classifier.Adjust {
	return func(text string, pred classifier.Prediction) classifier.Prediction {
		c := p.decide(ClassifyInput{Text: text, Description: text}, pred, triageBelow)
		pred.Category.Class = CategoryName(c.Category)
		pred.Severity.Class = SeverityName(c.Severity)
		pred.Priority.Class = PriorityName(c.Priority)
		pred.Dispatch.Class = DispatchName(c.Dispatch)
		return pred
	}
}

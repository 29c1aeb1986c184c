// Command classifier trains routing's text classifier from the labelled
// data set and measures it by k-fold cross-validation.
//
//	go run ./services/routing/cmd/classifier -train          # writes policy/classifier.v1.json (make classifier)
//	go run ./services/routing/cmd/classifier -cv 10          # figures and confusion matrices
//	go run ./services/routing/cmd/classifier -holdout        # the committed model on data/holdout.tsv
//	go run ./services/routing/cmd/classifier -explain "空调冒烟了"
//
// Paths are relative to services/routing (found from the working
// directory: the repository root or the module).
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/closeloop/closeloop/services/routing/internal/classifier"
	"github.com/closeloop/closeloop/services/routing/internal/domain"
)

const (
	dataFile    = "data/complaints.tsv"
	holdoutFile = "data/holdout.tsv"
	cuesFile    = "data/cues.json"
	policyFile  = "policy/classification.v2.json"
	modelFile   = "policy/classifier.v1.json"
	// defaultVersion of the model the trainer writes, before the digest of
	// its data (classifier.VersionOf). A change of the trainer's code
	// takes a new one.
	defaultVersion = "classifier.v1"
	// defaultThreshold is routing's default ROUTING_TRIAGE_CONFIDENCE.
	defaultThreshold = domain.DefaultTriageConfidence
)

func main() {
	train := flag.Bool("train", false, "train on the whole data set and write the model file")
	version := flag.String("version", defaultVersion, "version recorded in the model, before the digest of its data (with -train)")
	k := flag.Int("cv", 0, "k-fold cross-validation: print figures and confusion matrices")
	threshold := flag.Float64("threshold", defaultThreshold, "confidence below which a complaint goes to triage (with -cv, -explain)")
	explain := flag.String("explain", "", "classify this text with the committed model and the policy's floors")
	holdout := flag.Bool("holdout", false, "figures of the committed model on the held-out set, never trained or tuned on")
	flag.Parse()
	if err := run(*train, *version, *k, *threshold, *explain, *holdout); err != nil {
		fmt.Fprintln(os.Stderr, "classifier:", err)
		os.Exit(1)
	}
}

func run(train bool, version string, k int, threshold float64, explain string, holdout bool) error {
	dir, err := moduleDir()
	if err != nil {
		return err
	}
	if !train && k == 0 && explain == "" && !holdout {
		return errors.New("nothing to do: -train, -cv k, -holdout or -explain text")
	}
	if explain != "" {
		return explainText(dir, explain, threshold)
	}
	if holdout {
		return evaluateHoldout(dir, threshold)
	}
	set, err := loadSet(dir)
	if err != nil {
		return err
	}
	if k != 0 {
		if k < 2 || k > len(set.examples) {
			return fmt.Errorf("-cv: must be between 2 and %d, got %d", len(set.examples), k)
		}
		p, err := loadPolicy(dir)
		if err != nil {
			return err
		}
		opts := classifier.DefaultTrainOptions()
		fmt.Printf("## Model and policy floors (%s), as routing decides\n\n", p.Version)
		fmt.Print(classifier.CrossValidate(set.examples, set.cues, k, opts, p.FloorAdjust(threshold), threshold))
		fmt.Printf("\n## Model alone\n\n")
		fmt.Print(classifier.CrossValidate(set.examples, set.cues, k, opts, nil, threshold))
	}
	if train {
		opts := classifier.DefaultTrainOptions()
		version = classifier.VersionOf(version, set.raw, set.cuesRaw, opts)
		m := classifier.Train(set.examples, set.cues, opts, version)
		m.TrainedOn.File = dataFile
		m.TrainedOn.SHA256 = classifier.DatasetSHA256(set.raw)
		m.TrainedOn.CuesSHA256 = classifier.DatasetSHA256(set.cuesRaw)
		doc, err := m.Marshal()
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, modelFile), doc, 0o644); err != nil {
			return err
		}
		fmt.Printf("wrote %s: %s, %d examples, %d features\n", modelFile, version, len(set.examples), len(m.Weights))
	}
	return nil
}

type dataset struct {
	raw, cuesRaw []byte
	examples     []classifier.Example
	cues         classifier.Cues
}

func loadSet(dir string) (dataset, error) {
	raw, err := os.ReadFile(filepath.Join(dir, dataFile))
	if err != nil {
		return dataset{}, err
	}
	ex, err := classifier.ParseDataset(raw)
	if err != nil {
		return dataset{}, fmt.Errorf("%s: %w", dataFile, err)
	}
	doc, err := os.ReadFile(filepath.Join(dir, cuesFile))
	if err != nil {
		return dataset{}, err
	}
	cues, err := classifier.ParseCues(doc)
	if err != nil {
		return dataset{}, fmt.Errorf("%s: %w", cuesFile, err)
	}
	return dataset{raw: raw, cuesRaw: doc, examples: ex, cues: cues}, nil
}

func loadPolicy(dir string) (*domain.Policy, error) {
	doc, err := os.ReadFile(filepath.Join(dir, policyFile))
	if err != nil {
		return nil, err
	}
	return domain.ParsePolicy(doc)
}

func loadModel(dir string) (*classifier.Model, error) {
	doc, err := os.ReadFile(filepath.Join(dir, modelFile))
	if err != nil {
		return nil, err
	}
	return classifier.ParseModel(doc)
}

func evaluateHoldout(dir string, threshold float64) error {
	p, err := loadPolicy(dir)
	if err != nil {
		return err
	}
	m, err := loadModel(dir)
	if err != nil {
		return err
	}
	doc, err := os.ReadFile(filepath.Join(dir, holdoutFile))
	if err != nil {
		return err
	}
	ex, err := classifier.ParseDataset(doc)
	if err != nil {
		return fmt.Errorf("%s: %w", holdoutFile, err)
	}
	fmt.Printf("## %s with policy floors (%s) on %s\n\n", m.Version, p.Version, holdoutFile)
	fmt.Print(classifier.Evaluate(m, ex, p.FloorAdjust(threshold), threshold))
	fmt.Printf("\n## %s alone on %s\n\n", m.Version, holdoutFile)
	fmt.Print(classifier.Evaluate(m, ex, nil, threshold))
	return nil
}

func explainText(dir, text string, threshold float64) error {
	p, err := loadPolicy(dir)
	if err != nil {
		return err
	}
	m, err := loadModel(dir)
	if err != nil {
		return err
	}
	pred := m.Predict(text)
	c := p.WithClassifier(domain.Classifier{Model: m, TriageBelow: threshold}).Decide(domain.ClassifyInput{Text: text, Description: text})
	fmt.Printf("model %s: %s %.2f / %s %.2f / %s %.2f / dispatch %s %.2f\n", pred.Version,
		pred.Category.Class, pred.Category.P, pred.Severity.Class, pred.Severity.P, pred.Priority.Class, pred.Priority.P, pred.Dispatch.Class, pred.Dispatch.P)
	fmt.Printf("decided: %s / %s / %s, dispatch %s, confidence %.2f, triage %v\nrules fired: %v\ndeciding features: %v\n",
		domain.CategoryName(c.Category), domain.SeverityName(c.Severity), domain.PriorityName(c.Priority), domain.DispatchName(c.Dispatch),
		c.Confidence, c.NeedsTriage, c.RulesFired, c.Deciding)
	return nil
}

// moduleDir is services/routing: the working directory or below it.
func moduleDir() (string, error) {
	for _, d := range []string{".", "services/routing"} {
		if _, err := os.Stat(filepath.Join(d, dataFile)); err == nil {
			return d, nil
		}
	}
	return "", fmt.Errorf("%s not found: run from the repository root or services/routing", dataFile)
}

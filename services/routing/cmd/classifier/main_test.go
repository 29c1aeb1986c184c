package main

import (
	"bytes"
	"os"
	"runtime"
	"testing"

	"github.com/closeloop/closeloop/services/routing/internal/classifier"
)

// The committed model is the one `make classifier` trains from the
// committed data set and cues.
func TestCommittedModelIsTrainedFromTheData(t *testing.T) {
	set, err := loadSet("../..")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile("../../" + modelFile)
	if err != nil {
		t.Fatal(err)
	}
	m, err := classifier.ParseModel(doc)
	if err != nil {
		t.Fatal(err)
	}
	if m.TrainedOn.SHA256 != classifier.DatasetSHA256(set.raw) || m.TrainedOn.CuesSHA256 != classifier.DatasetSHA256(set.cuesRaw) || m.TrainedOn.Examples != len(set.examples) {
		t.Fatalf("model trained on %s, cues %s (%d examples); data set is %s, cues %s (%d): run make classifier",
			m.TrainedOn.SHA256, m.TrainedOn.CuesSHA256, m.TrainedOn.Examples, classifier.DatasetSHA256(set.raw), classifier.DatasetSHA256(set.cuesRaw), len(set.examples))
	}
	if want := classifier.VersionOf(defaultVersion, set.raw, set.cuesRaw, m.Training); m.Version != want {
		t.Fatalf("model version %q, want %q", m.Version, want)
	}
	// Go may fuse multiply-adds on other architectures, moving a last
	// decimal; amd64 never does, so there the bytes must match.
	if runtime.GOARCH != "amd64" {
		return
	}
	again := classifier.Train(set.examples, set.cues, m.Training, m.Version)
	again.TrainedOn = m.TrainedOn
	fresh, err := again.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(fresh, doc) {
		t.Fatal("retraining gives another model: the cues or the trainer changed since; run make classifier")
	}
}

// The figures the README promises, by 10-fold cross-validation of the
// model with the policy's floors.
func TestCrossValidationMeetsTargets(t *testing.T) {
	if testing.Short() {
		t.Skip("trains ten models")
	}
	set, err := loadSet("../..")
	if err != nil {
		t.Fatal(err)
	}
	p, err := loadPolicy("../..")
	if err != nil {
		t.Fatal(err)
	}
	if len(set.examples) < 400 {
		t.Fatalf("%d examples, want at least 400", len(set.examples))
	}
	r := classifier.CrossValidate(set.examples, set.cues, 10, classifier.DefaultTrainOptions(), p.FloorAdjust(defaultThreshold), defaultThreshold)
	if v := r.SafetyLegalRecall.Value(); v < 0.97 {
		t.Errorf("recall of urgent (safety and legal) %.3f, want >= 0.97", v)
	}
	if v := r.UrgentRecall.Value(); v < 0.97 {
		t.Errorf("recall of urgent %.3f, want >= 0.97", v)
	}
	for _, head := range []string{classifier.HeadCategory, classifier.HeadSeverity} {
		if v := r.Head(head).MacroAccuracy(); v < 0.85 {
			t.Errorf("%s macro accuracy %.3f, want >= 0.85", head, v)
		}
	}
	if t.Failed() {
		t.Log(r.String())
	}
}

// Every label, language and dispatch kind is in the data set, and no
// held-out complaint is.
func TestDataSetCoversTheDomainAndHoldsOutItsTestSet(t *testing.T) {
	set, err := loadSet("../..")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, e := range set.examples {
		for _, h := range classifier.HeadNames {
			seen[h+"="+e.Label(h)]++
		}
		seen["lang="+e.Lang]++
		seen["hazard="+e.Hazard]++
	}
	for _, h := range classifier.HeadNames {
		for _, c := range classifier.Classes[h] {
			if seen[h+"="+c] < 20 {
				t.Errorf("%s %s: %d examples, want at least 20", h, c, seen[h+"="+c])
			}
		}
	}
	for _, k := range []string{"lang=zh", "lang=en", "lang=mixed", "hazard=safety", "hazard=legal", "hazard=loss"} {
		if seen[k] < 20 {
			t.Errorf("%s: %d examples, want at least 20", k, seen[k])
		}
	}
	doc, err := os.ReadFile("../../" + holdoutFile)
	if err != nil {
		t.Fatal(err)
	}
	held, err := classifier.ParseDataset(doc)
	if err != nil {
		t.Fatal(err)
	}
	train := map[string]bool{}
	for _, e := range set.examples {
		train[e.Text] = true
	}
	for _, e := range held {
		if train[e.Text] {
			t.Errorf("held-out complaint in the training set: %s", e.Text)
		}
	}
}

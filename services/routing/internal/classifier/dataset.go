package classifier

import (
	"bufio"
	"bytes"
	"fmt"
	"slices"
	"strings"
)

// Example is one labelled complaint of the data set (data/complaints.tsv).
type Example struct {
	Category string // product_quality, service, delivery, price_promotion, other
	Severity string // L1..L4
	Priority string // general, important, urgent
	Dispatch string // on_site, remote, none
	Hazard   string // safety, legal, loss, or "-"
	Lang     string // zh, en, mixed
	Text     string
}

// Label is the example's class for a head.
func (e Example) Label(head string) string {
	switch head {
	case HeadCategory:
		return e.Category
	case HeadSeverity:
		return e.Severity
	case HeadPriority:
		return e.Priority
	case HeadDispatch:
		return e.Dispatch
	}
	return ""
}

// Heads the model predicts, in the order it stores them.
const (
	HeadCategory = "category"
	HeadSeverity = "severity"
	HeadPriority = "priority"
	HeadDispatch = "dispatch"
)

// Classes of each head, in the order the model and the reports use.
var Classes = map[string][]string{
	HeadCategory: {"product_quality", "service", "delivery", "price_promotion", "other"},
	HeadSeverity: {"L1", "L2", "L3", "L4"},
	HeadPriority: {"general", "important", "urgent"},
	HeadDispatch: {"on_site", "remote", "none"},
}

// HeadNames in model order.
var HeadNames = []string{HeadCategory, HeadSeverity, HeadPriority, HeadDispatch}

var (
	hazards = []string{"safety", "legal", "loss", "-"}
	langs   = []string{"zh", "en", "mixed"}
	header  = "category\tseverity\tpriority\tdispatch\thazard\tlang\ttext"
)

// ParseDataset reads the tab-separated data set: the header line, then one
// example a line. A bad line is an error naming its line number and column.
func ParseDataset(doc []byte) ([]Example, error) {
	sc := bufio.NewScanner(bytes.NewReader(doc))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	var out []Example
	seen := map[string]int{}
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimRight(sc.Text(), "\r")
		if n == 1 {
			if line != header {
				return nil, fmt.Errorf("dataset: line 1: header must be %q", header)
			}
			continue
		}
		if line == "" {
			continue
		}
		f := strings.Split(line, "\t")
		if len(f) != 7 {
			return nil, fmt.Errorf("dataset: line %d: want 7 tab-separated columns, got %d", n, len(f))
		}
		e := Example{Category: f[0], Severity: f[1], Priority: f[2], Dispatch: f[3], Hazard: f[4], Lang: f[5], Text: strings.TrimSpace(f[6])}
		for _, c := range []struct {
			name, v string
			allowed []string
		}{
			{HeadCategory, e.Category, Classes[HeadCategory]}, {HeadSeverity, e.Severity, Classes[HeadSeverity]},
			{HeadPriority, e.Priority, Classes[HeadPriority]}, {HeadDispatch, e.Dispatch, Classes[HeadDispatch]},
			{"hazard", e.Hazard, hazards}, {"lang", e.Lang, langs},
		} {
			if !slices.Contains(c.allowed, c.v) {
				return nil, fmt.Errorf("dataset: line %d: %s: unknown value %q (one of %s)", n, c.name, c.v, strings.Join(c.allowed, ", "))
			}
		}
		if e.Text == "" {
			return nil, fmt.Errorf("dataset: line %d: text: required", n)
		}
		if first, dup := seen[e.Text]; dup {
			return nil, fmt.Errorf("dataset: line %d: text: duplicate of line %d", n, first)
		}
		seen[e.Text] = n
		out = append(out, e)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("dataset: %w", err)
	}
	return out, nil
}

package web

import (
	"fmt"

	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

// A chart is a horizontal bar chart drawn on the server as inline SVG
// (no script), one bar a KPI row; the template puts its title in the SVG
// and a table of the same figures under it.
type chart struct {
	ID     string
	Title  string
	Height int
	Bars   []bar
}

type bar struct {
	Label string
	Text  string // the figure as shown ("87.5%", "4.20")
	Y     int    // top of the bar
	Width int    // 0–chartBarMax
}

// Geometry of the charts, in SVG user units.
const (
	chartLabelWidth = 260
	chartBarMax     = 320
	chartBarHeight  = 22
	chartGap        = 8
)

// newChart draws each row's value as a bar, scale being a full bar.
func newChart(id, title string, rows []kpiRow, value func(kpiRow) (float64, bool), scale float64, text func(float64) string) chart {
	c := chart{ID: id, Title: title}
	for _, r := range rows {
		v, ok := value(r)
		if !ok {
			continue
		}
		w := int(v / scale * chartBarMax)
		w = min(max0(w), chartBarMax)
		c.Bars = append(c.Bars, bar{Label: r.Label(), Text: text(v), Y: len(c.Bars) * (chartBarHeight + chartGap), Width: w})
	}
	c.Height = max0(len(c.Bars)*(chartBarHeight+chartGap) - chartGap)
	return c
}

func max0(n int) int {
	if n < 0 {
		return 0
	}
	return n
}

func percent(f float64) string { return fmt.Sprintf("%.1f%%", f*100) }

// kpiCharts draws CSI, SLA attainment per target, first-contact
// resolution, resolution, reopen and repeat rates.
func kpiCharts(lang string, rows []kpiRow, targets []eventsv1.SlaTarget) []chart {
	rate := func(f func(kpiRow) float64) func(kpiRow) (float64, bool) {
		return func(r kpiRow) (float64, bool) { return f(r), true }
	}
	cs := []chart{
		newChart("chart-csi", msg(lang, "kpi.csi"), rows, func(r kpiRow) (float64, bool) { return r.CSI, r.Surveys > 0 }, 5,
			func(f float64) string { return fmt.Sprintf("%.2f", f) }),
	}
	for _, t := range targets {
		cs = append(cs, newChart("chart-sla-"+enumName(t), msg(lang, "kpi.sla")+" "+enumName(t), rows,
			func(r kpiRow) (float64, bool) { v, ok := r.SLA[t]; return v, ok }, 1, percent))
	}
	return append(cs,
		newChart("chart-fcr", msg(lang, "kpi.fcr"), rows, rate(func(r kpiRow) float64 { return r.FCR }), 1, percent),
		newChart("chart-resolution", msg(lang, "kpi.resolution"), rows, rate(func(r kpiRow) float64 { return r.Resolution }), 1, percent),
		newChart("chart-reopen", msg(lang, "kpi.reopen"), rows, rate(func(r kpiRow) float64 { return r.Reopen }), 1, percent),
		newChart("chart-repeat", msg(lang, "kpi.repeat"), rows, rate(func(r kpiRow) float64 { return r.Repeat }), 1, percent),
	)
}

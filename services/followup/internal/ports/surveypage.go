package ports

import (
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/closeloop/closeloop/libs/kernel"
	"github.com/closeloop/closeloop/services/followup/internal/app"
)

// The survey page speaks Simplified Chinese and English. The language is
// the one the customer chose with the page's switch (lang=zh|en in the
// link or the form), else the one the browser's Accept-Language prefers
// of the two, else English. The complaint's events carry no language of
// the customer's, so there is nothing else to go by.

// texts is everything the survey page says, in one language.
type texts struct {
	Code      string // the lang parameter's value
	Tag       string // BCP 47, for <html lang> and Content-Language
	Name      string // the language's own name, on the switch
	Title     string
	Heading   string
	Questions []string
	Yes, No   string
	Send      string

	Thanks, FormUnreadable, Invalid, NotFound, Closed, Failed string
	// CheckAnswer introduces the list of mistakes; Sep joins them, End ends it.
	CheckAnswer, Sep, End string
	// Fields names a form field; Rules words a rule's violation (by field
	// and rule, then rule alone): the kernel's messages are English.
	Fields map[string]string
	Rules  map[string]string
}

var english = texts{
	Code: "en", Tag: "en", Name: "English",
	Title: "Your feedback", Heading: "How did we do?",
	Questions: app.Questions,
	Yes:       "Yes", No: "No", Send: "Send",
	Thanks:         "Thank you for your feedback.",
	FormUnreadable: "The form could not be read.",
	Invalid:        "This survey link is not valid.",
	NotFound:       "We could not find this survey.",
	Closed:         "This survey is no longer open (it has expired or was already answered). Thank you.",
	Failed:         "Sorry, something went wrong. Please try again later.",
	CheckAnswer:    "Please check your answer: ", Sep: "; ", End: ".",
}

var chinese = texts{
	Code: "zh", Tag: "zh-CN", Name: "中文",
	Title: "您的反馈", Heading: "我们的服务怎么样？",
	Questions: []string{
		"您对投诉的处理是否满意？（1 = 非常不满意，5 = 非常满意）",
		"您的问题解决了吗？",
		"您还有什么想告诉我们的吗？",
	},
	Yes: "是", No: "否", Send: "提交",
	Thanks:         "感谢您的反馈。",
	FormUnreadable: "无法读取表单。",
	Invalid:        "此调查链接无效。",
	NotFound:       "找不到此调查。",
	Closed:         "此调查已关闭（已过期或已作答）。谢谢。",
	Failed:         "抱歉，出了点问题，请稍后再试。",
	CheckAnswer:    "请检查您的回答：", Sep: "；", End: "。",
	Fields: map[string]string{"satisfaction": "满意度", "resolved": "问题是否解决", "comment": "留言"},
	Rules: map[string]string{
		"satisfaction/range": "须为 1 到 5",
		"resolved/enum":      "须为“是”或“否”",
		"required":           "不能为空",
		"utf8":               "含有无效字符",
		"max_len":            "过长",
	},
}

// languages are the page's; of two with the same weight in Accept-Language,
// the one it names first wins.
var languages = []*texts{&english, &chinese}

// violation words one mistake, naming the field and the rule.
func (l *texts) violation(v kernel.Violation) string {
	field, ok := l.Fields[v.Field]
	if !ok {
		return v.Field + " " + v.Message
	}
	msg, ok := l.Rules[v.Field+"/"+v.Rule]
	if !ok {
		if msg, ok = l.Rules[v.Rule]; !ok {
			msg = v.Message
		}
	}
	return field + msg
}

// language picks the page's language: chosen (the switch's lang), else
// the browser's preference.
func language(chosen, acceptLanguage string) *texts {
	for _, l := range languages {
		if chosen == l.Code {
			return l
		}
	}
	return preferred(acceptLanguage)
}

// preferred is the language of the two that Accept-Language weighs most
// ("zh-CN,zh;q=0.9,en;q=0.8"); English when it names neither.
func preferred(acceptLanguage string) *texts {
	best, bestQ := &english, 0.0
	for _, part := range strings.Split(acceptLanguage, ",") {
		tag, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		primary, _, _ := strings.Cut(strings.ToLower(strings.TrimSpace(tag)), "-")
		q := 1.0
		if v, ok := strings.CutPrefix(strings.TrimSpace(params), "q="); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				continue
			}
			q = f
		}
		for _, l := range languages {
			if primary == l.Code && q > bestQ {
				best, bestQ = l, q
			}
		}
	}
	return best
}

var page = template.Must(template.New("survey").Parse(`<!doctype html>
<html lang="{{.L.Tag}}"><head><meta charset="utf-8"><title>{{.L.Title}}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body>
{{with .Switch}}<nav aria-label="Language / 语言"><a href="{{.Href}}" hreflang="{{.L.Tag}}" lang="{{.L.Tag}}">{{.L.Name}}</a></nav>{{end}}
{{if .Message}}<p role="{{if .Error}}alert{{else}}status{{end}}">{{.Message}}</p>{{end}}
{{if .Form}}
<h1>{{.L.Heading}}</h1>
<form method="post" action="">
<input type="hidden" name="t" value="{{.Token}}">
<input type="hidden" name="lang" value="{{.L.Code}}">
<fieldset><legend>{{index .L.Questions 0}}</legend>
{{range .Scores}}<label><input type="radio" name="satisfaction" value="{{.}}" required> {{.}}</label>
{{end}}</fieldset>
<fieldset><legend>{{index .L.Questions 1}}</legend>
<label><input type="radio" name="resolved" value="yes" required> {{.L.Yes}}</label>
<label><input type="radio" name="resolved" value="no"> {{.L.No}}</label>
</fieldset>
<p><label>{{index .L.Questions 2}}<br><textarea name="comment" rows="5" cols="60" maxlength="2000"></textarea></label></p>
<p><button type="submit">{{.L.Send}}</button></p>
</form>
{{end}}
</body></html>
`))

type pageData struct {
	L       *texts
	Message string
	Error   bool
	Form    bool
	Token   string
	Scores  []int
	// Switch links to the same page in the other language; nil on the
	// answer to a submission, which has no page to show again.
	Switch *langSwitch
}

type langSwitch struct {
	Href string
	L    *texts
}

// switchTo links the survey's link (token t) in the language other than l.
func switchTo(l *texts, token string) *langSwitch {
	other := &chinese
	if l == &chinese {
		other = &english
	}
	return &langSwitch{Href: "?" + url.Values{"t": {token}, "lang": {other.Code}}.Encode(), L: other}
}

func renderPage(w http.ResponseWriter, code int, d pageData) {
	d.Scores = []int{1, 2, 3, 4, 5}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Language", d.L.Tag)
	w.Header().Set("Vary", "Accept-Language")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer") // the token is in the URL
	w.WriteHeader(code)
	_ = page.Execute(w, d)
}

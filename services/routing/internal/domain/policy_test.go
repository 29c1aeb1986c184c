package domain

import (
	"os"
	"slices"
	"strings"
	"testing"

	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
	"github.com/closeloop/closeloop/services/routing/internal/classifier"
)

// shippedPolicy is the shipped policy with the shipped text model, as
// routing runs them.
func shippedPolicy(t testing.TB) *Policy {
	t.Helper()
	doc, err := os.ReadFile("../../policy/classification.v2.json")
	if err != nil {
		t.Fatal(err)
	}
	p, err := ParsePolicy(doc)
	if err != nil {
		t.Fatal(err)
	}
	doc, err = os.ReadFile("../../policy/classifier.v1.json")
	if err != nil {
		t.Fatal(err)
	}
	m, err := classifier.ParseModel(doc)
	if err != nil {
		t.Fatal(err)
	}
	return p.WithClassifier(Classifier{Model: m, TriageBelow: 0.5})
}

const (
	pq, svc, dlv, price, other = eventsv1.Category_CATEGORY_PRODUCT_QUALITY, eventsv1.Category_CATEGORY_SERVICE, eventsv1.Category_CATEGORY_DELIVERY, eventsv1.Category_CATEGORY_PRICE_PROMOTION, eventsv1.Category_CATEGORY_OTHER
	l1, l2, l3, l4             = eventsv1.Severity_SEVERITY_L1, eventsv1.Severity_SEVERITY_L2, eventsv1.Severity_SEVERITY_L3, eventsv1.Severity_SEVERITY_L4
	gen, imp, urg              = eventsv1.Priority_PRIORITY_GENERAL, eventsv1.Priority_PRIORITY_IMPORTANT, eventsv1.Priority_PRIORITY_URGENT
	phone, social, press, web  = eventsv1.Channel_CHANNEL_PHONE, eventsv1.Channel_CHANNEL_SOCIAL_MEDIA, eventsv1.Channel_CHANNEL_PRESS, eventsv1.Channel_CHANNEL_WEB_FORM
	email, ecom, chat          = eventsv1.Channel_CHANNEL_EMAIL, eventsv1.Channel_CHANNEL_ECOMMERCE, eventsv1.Channel_CHANNEL_ONLINE_CHAT
	regular, vip               = eventsv1.CustomerTier_CUSTOMER_TIER_REGULAR, eventsv1.CustomerTier_CUSTOMER_TIER_VIP
)

// TestPolicyClassifiesRealisticComplaints: the shipped model with the
// shipped policy's floors; every rule of the policy fires in at least one
// of these complaints, in Chinese and in English.
func TestPolicyClassifiesRealisticComplaints(t *testing.T) {
	p := shippedPolicy(t)
	cases := []struct {
		text    string
		channel eventsv1.Channel
		tier    eventsv1.CustomerTier
		repeat  bool
		cat     eventsv1.Category
		sev     eventsv1.Severity
		pri     eventsv1.Priority
		rules   []string
	}{
		// safety → urgent, L4
		{"电暖器使用半小时后开始冒烟，家里有老人小孩，非常害怕", phone, regular, false, pq, l4, urg, []string{"safety.fire_smoke"}},
		{"洗衣机插头处起火，幸好发现及时", phone, regular, false, pq, l4, urg, []string{"safety.fire_smoke"}},
		{"热水器漏电，洗澡时被电了一下", web, regular, false, pq, l4, urg, []string{"safety.electric_shock"}},
		{"The charger started to smoke while my phone was charging overnight.", email, regular, false, pq, l4, urg, []string{"safety.fire_smoke"}},
		{"Microwave caught fire after two minutes. Kitchen is full of smoke!", phone, regular, false, pq, l4, urg, []string{"safety.fire_smoke"}},
		{"The outdoor unit smokes and smells of burning.", web, regular, false, pq, l4, urg, []string{"safety.fire_smoke"}},
		{"I got an electric shock touching the fridge door handle.", chat, regular, false, pq, l4, urg, []string{"safety.electric_shock"}},
		{"The battery pack exploded in the garage.", email, regular, false, pq, l4, urg, []string{"safety.fire_smoke"}},
		{"电饭煲外壳烫伤了孩子的手，不工作了", phone, regular, false, pq, l4, urg, []string{"safety.injury"}},
		// legal risk → urgent (L3, management coordinates)
		{"三次维修都没修好，我已经联系律师了", phone, regular, false, pq, l3, urg, []string{"legal.threat"}},
		{"再不处理我就去消协投诉，并且起诉你们", web, regular, false, pq, l3, urg, []string{"legal.threat", "legal.regulator"}},
		{"If this is not fixed by Friday my lawyer will be in touch.", email, regular, false, pq, l3, urg, []string{"legal.threat"}},
		{"I will sue your company for the damage your installer caused.", email, regular, false, svc, l3, urg, []string{"legal.threat"}},
		{"空调不制冷，客服态度恶劣，我要起诉", phone, regular, false, pq, l3, urg, []string{"legal.threat"}},
		{"Delivery is three weeks late, I am taking legal action.", email, regular, false, dlv, l3, urg, []string{"legal.threat"}},
		// major loss → urgent
		{"设备故障导致整条生产线停产，每小时损失数万元", phone, vip, false, pq, l3, urg, []string{"loss.major", "tier.vip"}},
		{"The server crashed and we suffered data loss on 40 workstations.", email, regular, false, pq, l3, urg, []string{"loss.major"}},
		// core function → important, L2
		{"冰箱买了一个月就不制冷了", phone, regular, false, pq, l2, imp, nil},
		{"电视无法开机，指示灯一直闪", web, regular, false, pq, l2, imp, nil},
		{"洗碗机运行时异响很大，像有东西在撞", chat, regular, false, pq, l2, imp, nil},
		{"The dishwasher stopped working after the last update.", email, regular, false, pq, l2, imp, nil},
		{"Laptop won't turn on since yesterday.", chat, regular, false, pq, l2, imp, nil},
		{"The printer is faulty: paper jams every second page.", web, regular, false, pq, l2, imp, nil},
		{"The air conditioner is noisy at night and overheats.", phone, regular, false, pq, l2, imp, nil},
		// cosmetic → general
		{"收到的冰箱门上有一道划痕", ecom, regular, false, pq, l1, gen, nil},
		{"外观有色差，和图片不一样", ecom, regular, false, pq, l1, gen, nil},
		{"There is a scratch on the screen bezel.", email, regular, false, pq, l1, gen, nil},
		{"The oven door has a small dent and the paint is chipped.", web, regular, false, pq, l1, gen, nil},
		// service attitude → important
		{"客服态度很差，说话不耐烦", phone, regular, false, svc, l1, imp, nil},
		{"留言三天没人回复，一直推诿", web, regular, false, svc, l1, imp, nil},
		{"The engineer was rude and left without explaining anything.", email, regular, false, svc, l1, imp, nil},
		{"Nobody called back after I was promised a call within 24 hours.", phone, regular, false, svc, l1, imp, nil},
		// delivery → important
		{"快递一直没收到，物流信息三天没更新", ecom, regular, false, dlv, l1, imp, nil},
		{"约好周六送货，结果延误到下周三", phone, regular, false, dlv, l1, imp, nil},
		{"My order has not arrived and the courier says it was delivered.", email, regular, false, dlv, l1, imp, nil},
		{"The shipment is delayed again, this is the second week.", chat, regular, false, dlv, l1, imp, nil},
		// price and promotion → general
		{"刚买三天就降价了，要求退差价", ecom, regular, false, price, l1, gen, nil},
		{"优惠券下单时没有生效", ecom, regular, false, price, l1, gen, nil},
		{"I was charged twice for the same order.", email, regular, false, price, l1, gen, nil},
		{"The promotion price was not applied at checkout.", web, regular, false, price, l1, gen, nil},
		// usage question → other, general
		{"这个功能怎么设置？说明书看不懂", phone, regular, false, other, l1, gen, nil},
		{"How do I pair the remote with the TV?", chat, regular, false, other, l1, gen, nil},
		// nothing matches → the default
		{"我想反馈一下使用体验", phone, regular, false, other, l1, gen, nil},
		{"Please call me back regarding my issue.", phone, regular, false, other, l1, gen, nil},
		// channel: press and social media raise priority one step
		{"微博上发帖：买的冰箱门有划痕，商家不管", social, regular, false, pq, l1, imp, []string{"channel.public"}},
		{"Journalist asking about customers whose washing machine stopped working.", press, regular, false, pq, l3, urg, []string{"reputation.media", "channel.public"}},
		{"Posting this on Twitter: the dryer caught fire!", social, regular, false, pq, l4, urg, []string{"safety.fire_smoke", "reputation.going_public", "channel.public"}},
		// customer tier: VIP raises priority one step
		{"VIP客户：收到的商品外观有污渍", phone, vip, false, pq, l1, imp, []string{"tier.vip"}},
		{"Our order is delayed, we are a key account.", email, vip, false, dlv, l1, urg, []string{"tier.vip"}},
		// repeat: raised one step
		{"冰箱又不制冷了，这是第二次投诉", phone, regular, true, pq, l2, urg, []string{"repeat.raise"}},
		{"Again a scratch on the replacement unit.", email, regular, true, pq, l1, imp, []string{"repeat.raise"}},
		// the plain words of hazards the exact keywords missed
		{"空调开着闻到很浓的焦糊味，出风口还冒出火星", phone, regular, false, pq, l4, urg, []string{"safety.fire_smoke"}},
		{"厨房里一股煤气味，阀门关了还有", phone, regular, false, pq, l4, urg, []string{"safety.gas", "safety.gas_escaping"}},
		{"The boiler is hissing and there's a gas smell upstairs", phone, regular, false, pq, l4, urg, []string{"safety.gas", "safety.gas_escaping"}},
		{"洗碗机漏水流到插座那边，一直跳闸", web, regular, false, pq, l4, urg, []string{"safety.water_near_power"}},
		{"My toddler burned her fingers on the oven door, we went to hospital", email, regular, false, pq, l4, urg, []string{"safety.fire_smoke", "safety.injury"}},
		{"我要把你们这破洗衣机的视频发到抖音上，让大家都知道", social, regular, false, pq, l3, urg, []string{"reputation.media", "reputation.going_public", "channel.public"}},
		// word boundaries: "issue" is not "sue", "fired" is not "fire", "courtesy" is not "court"
		{"The issue with the invoice: the courtesy discount is missing.", email, regular, false, price, l1, gen, nil},
	}
	if len(cases) < 40 {
		t.Fatalf("want at least 40 complaints, have %d", len(cases))
	}
	fired := map[string]bool{}
	for _, tc := range cases {
		t.Run(tc.text, func(t *testing.T) {
			got := p.Decide(ClassifyInput{Text: tc.text, Description: tc.text, Channel: tc.channel, Tier: tc.tier, Repeat: tc.repeat})
			if got.Category != tc.cat || got.Severity != tc.sev || got.Priority != tc.pri {
				t.Errorf("got %s/%s/%s, want %s/%s/%s (rules %v)", CategoryName(got.Category), SeverityName(got.Severity), PriorityName(got.Priority),
					CategoryName(tc.cat), SeverityName(tc.sev), PriorityName(tc.pri), got.RulesFired)
			}
			if !slices.Equal(got.RulesFired, tc.rules) {
				t.Errorf("rules fired %v, want %v", got.RulesFired, tc.rules)
			}
		})
		for _, r := range tc.rules {
			fired[r] = true
		}
	}
	for _, r := range p.Rules {
		if !fired[r.ID] {
			t.Errorf("rule %s is covered by no complaint", r.ID)
		}
	}
}

func TestPolicyReviewsTeamsAndSkills(t *testing.T) {
	p := shippedPolicy(t)
	sup, qual, senior := eventsv1.ReviewLevel_REVIEW_LEVEL_SUPERVISOR, eventsv1.ReviewLevel_REVIEW_LEVEL_QUALITY, eventsv1.ReviewLevel_REVIEW_LEVEL_SENIOR_MANAGEMENT
	for _, tc := range []struct {
		sev      eventsv1.Severity
		revs     []eventsv1.ReviewLevel
		team     string
		solution bool // before any reopen; after one it always is
	}{
		{l1, nil, "customer-service", false},
		{l2, []eventsv1.ReviewLevel{sup}, "technical-support", true},
		{l3, []eventsv1.ReviewLevel{sup, qual}, "management-coordination", true},
		{l4, []eventsv1.ReviewLevel{sup, qual, senior}, "emergency-response", true},
	} {
		if !p.ResponseRequired(tc.sev) || p.SolutionRequired(tc.sev, false) != tc.solution || !p.SolutionRequired(tc.sev, true) {
			t.Errorf("%s: response %v, solution %v (after a reopen %v), want true, %v (true)", SeverityName(tc.sev),
				p.ResponseRequired(tc.sev), p.SolutionRequired(tc.sev, false), p.SolutionRequired(tc.sev, true), tc.solution)
		}
		if got := p.RequiredReviews(tc.sev); !slices.Equal(got, tc.revs) {
			t.Errorf("%s reviews %v, want %v", SeverityName(tc.sev), got, tc.revs)
		}
		if got := p.TeamFor(tc.sev); got != tc.team {
			t.Errorf("%s team %q, want %q", SeverityName(tc.sev), got, tc.team)
		}
	}
	if got := p.SkillFor(dlv); got != "logistics" {
		t.Errorf("delivery skill %q", got)
	}
	if p.Version != "classification.v2" || p.RepeatWindowDays != 90 || p.Handling.Version != "handling.v1" {
		t.Errorf("version %q window %d handling %q", p.Version, p.RepeatWindowDays, p.Handling.Version)
	}
}

func TestParsePolicyRejectsBadDocuments(t *testing.T) {
	good, err := os.ReadFile("../../policy/classification.v2.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, from, to, wantErr string }{
		{"unknown field", `"version"`, `"verzion": "x", "version"`, "unknown field"},
		{"no version", `"version": "classification.v2"`, `"version": ""`, "version: required"},
		{"bad window", `"repeat_window_days": 90`, `"repeat_window_days": 0`, "repeat_window_days"},
		{"bad severity", `"severity": "L4", "priority": "urgent"`, `"severity": "L9", "priority": "urgent"`, "severity: unknown value \"L9\""},
		{"bad dispatch", `"dispatch": "on_site"`, `"dispatch": "by_pigeon"`, "dispatch: unknown value \"by_pigeon\""},
		{"with alone", `"keywords": ["煤气", "燃气", "天然气", "gas"],`, ``, "with: needs keywords too"},
		{"empty except", `"except": ["打不着火", `, `"except": ["", `, "except: empty term"},
		{"bad channel", `"channels": ["press", "social_media"]`, `"channels": ["pigeon"]`, "unknown channel"},
		{"bad review", `"reviews": ["supervisor"]`, `"reviews": ["boss"]`, "handling.by_severity.L2.reviews: unknown value \"boss\""},
		{"review twice", `"reviews": ["supervisor"]`, `"reviews": ["supervisor", "supervisor"]`, "handling.by_severity.L2.reviews: \"supervisor\" twice"},
		{"no handling version", `"version": "handling.v1"`, `"version": ""`, "handling.version: required"},
		{"severity without rules", `"L4": {"response": true, "solution": "always", "reviews": ["supervisor", "quality", "senior_management"]}`, `"L9": {"response": true, "solution": "always", "reviews": []}`, "handling.by_severity.L9: unknown value"},
		{"severity missing", `,
      "L4": {"response": true, "solution": "always", "reviews": ["supervisor", "quality", "senior_management"]}`, ``, "handling.by_severity.L4: required"},
		{"response off", `"L1": {"response": true`, `"L1": {"response": false`, "handling.by_severity.L1.response: must be true"},
		{"bad solution", `"solution": "after_reopen"`, `"solution": "sometimes"`, "handling.by_severity.L1.solution: unknown value \"sometimes\""},
		{"old reviews section", `"teams": {`, `"reviews": {"L1": []}, "teams": {`, "reviews: moved to handling.by_severity"},
		{"missing team", `"L4": "emergency-response"`, `"L4": ""`, "teams.L4"},
		{"duplicate id", `"id": "tier.vip"`, `"id": "repeat.raise"`, "unique"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc := strings.Replace(string(good), tc.from, tc.to, 1)
			if doc == string(good) {
				t.Fatalf("test edit %q not applied", tc.from)
			}
			_, err := ParsePolicy([]byte(doc))
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err %v, want it to mention %q", err, tc.wantErr)
			}
		})
	}
}

package web

import (
	"net/http"
	"sort"
	"strconv"
	"strings"
)

// Languages of the console; Chinese is the default when the browser
// prefers it, English otherwise.
const (
	langZH = "zh"
	langEN = "en"
)

// messages holds every text of the pages, by key and language.
var messages = map[string][2]string{ // [zh, en]
	"title":            {"投诉处理台", "Complaint desk"},
	"skip":             {"跳到正文", "Skip to content"},
	"signin":           {"登录", "Sign in"},
	"signout":          {"退出", "Sign out"},
	"token":            {"访问令牌", "Access token"},
	"token.help":       {"管理员发给您的个人令牌。", "The personal token your administrator gave you."},
	"token.bad":        {"令牌无效。", "This token is not valid."},
	"token.notperson":  {"此令牌不属于个人，不能登录控制台。", "This token does not belong to a person and cannot sign in."},
	"expired":          {"您已长时间未操作，请重新登录。", "You were idle for too long; please sign in again."},
	"forged":           {"表单已过期或不是从本站提交，未做任何更改。", "The form expired or was not sent from this site; nothing was changed."},
	"forbidden":        {"您的角色不能查看此页面。", "Your role may not see this page."},
	"notfound":         {"找不到该投诉（或已关闭）。", "No such complaint (or it is closed)."},
	"signedin":         {"已登录", "Signed in as"},
	"myqueue":          {"我的队列", "My queue"},
	"allopen":          {"全部未结", "All open"},
	"filters":          {"筛选", "Filters"},
	"apply":            {"应用", "Apply"},
	"search":           {"描述包含", "Description contains"},
	"serial":           {"产品序列号", "Product serial"},
	"breachedonly":     {"仅已超时", "Breached only"},
	"escalatedonly":    {"仅已升级", "Escalated only"},
	"any":              {"全部", "Any"},
	"sort":             {"排序", "Sort"},
	"sort.due":         {"最近截止", "Nearest deadline"},
	"sort.received":    {"最新收到", "Newest"},
	"sort.priority":    {"优先级", "Priority"},
	"col.id":           {"编号", "Complaint"},
	"col.status":       {"状态", "Status"},
	"col.severity":     {"严重度", "Severity"},
	"col.priority":     {"优先级", "Priority"},
	"col.channel":      {"渠道", "Channel"},
	"col.team":         {"团队", "Team"},
	"col.owner":        {"负责人", "Owner"},
	"col.due":          {"下一截止", "Next deadline"},
	"col.category":     {"类别", "Category"},
	"col.rules":        {"触发规则", "Rules fired"},
	"col.escalation":   {"升级级别", "Escalation"},
	"col.received":     {"收到时间", "Received"},
	"none":             {"无", "none"},
	"empty":            {"没有符合条件的投诉。", "No complaints match."},
	"total":            {"共", "Total"},
	"overdue":          {"已超时", "overdue by"},
	"left":             {"剩余", "left"},
	"paused":           {"已暂停", "paused"},
	"breached":         {"已超时", "breached"},
	"warned":           {"已预警", "warned at"},
	"classification":   {"分类", "Classification"},
	"clocks":           {"SLA 时钟", "SLA clocks"},
	"timeline":         {"时间线", "Timeline"},
	"description":      {"描述", "Description"},
	"request":          {"客户诉求", "Customer's request"},
	"personal":         {"客户个人信息已加密保存，本页不显示。", "The customer's personal data is sealed and not shown on this page."},
	"actions":          {"操作", "Actions"},
	"act.accept":       {"接受分派", "Accept assignment"},
	"act.respond":      {"记录回应", "Record response"},
	"act.propose":      {"提出解决方案", "Propose a solution"},
	"f.channel":        {"回应渠道", "Channel used"},
	"f.summary":        {"摘要", "Summary"},
	"f.solution":       {"方案", "Solution"},
	"done.accept":      {"已接受分派。", "Assignment accepted."},
	"done.respond":     {"已记录回应。", "Response recorded."},
	"done.propose":     {"已提出解决方案。", "Solution proposed."},
	"err.stale":        {"投诉已被他人更新，请查看最新内容后重试。", "Someone else changed this complaint; check the latest and try again."},
	"err.denied":       {"您无权执行此操作。", "You may not do this."},
	"err.precondition": {"现在不能执行此操作：", "This cannot be done now: "},
	"err.unavailable":  {"服务暂时不可用，请稍后重试。", "The service is unavailable; try again shortly."},
	"err.form":         {"请更正以下标出的字段。", "Please correct the fields marked below."},
	"lang.switch":      {"English", "中文"},
	"back":             {"返回队列", "Back to the queue"},
	"by":               {"操作人", "by"},
	"live":             {"倒计时实时更新", "Countdowns update live"},

	// The agent's forms (agent.go): labels are "f.<action>.<field>".
	"links":                                   {"关联投诉与工单", "Links and work orders"},
	"links.repeat":                            {"重复投诉，之前的投诉：", "A repeat of the earlier complaints:"},
	"links.duplicates":                        {"已并入的重复报告", "Duplicate reports linked here"},
	"links.none":                              {"没有关联的投诉。", "No linked complaints."},
	"workorders":                              {"工单", "Work orders"},
	"wo.id":                                   {"工单号", "Work order"},
	"wo.mode":                                 {"方式", "Mode"},
	"wo.service":                              {"服务类型", "Service"},
	"wo.requiredby":                           {"要求时间", "Required by"},
	"wo.state":                                {"最新事件", "Latest event"},
	"wo.technician":                           {"技术员", "Technician"},
	"act.dispatch":                            {"申请派工", "Request dispatch"},
	"act.rootcause":                           {"记录根因（5W1H）", "Record root cause (5W1H)"},
	"act.hold":                                {"挂起", "Put on hold"},
	"act.unhold":                              {"解除挂起", "Take off hold"},
	"act.resolve":                             {"解决", "Resolve"},
	"act.reassign":                            {"改派", "Reassign"},
	"dispatch.help":                           {"留空的设备型号、序列号、区域和客户单位取自投诉；现场联系人始终取自投诉（加密，本页不显示）。", "Equipment model, serials, region and organisation left empty are taken from the complaint; the site contact always is (sealed, not shown here)."},
	"rootcause.help":                          {"重复投诉解决前必须记录根因，六项都要填写。", "A repeat complaint needs its root cause before it is resolved; every part is required."},
	"resolve.help":                            {"解决前须已回应客户，并满足处理规则（按严重度的方案审批、重复投诉的根因）；缺什么系统会说明。", "Resolving needs a response to the customer and the handling rules met (an approved solution by severity, a repeat's root cause); what is missing is named."},
	"f.dispatch.spec.mode":                    {"服务方式", "Mode"},
	"f.dispatch.spec.service_type":            {"服务类型", "Service type"},
	"f.dispatch.spec.required_by":             {"最迟到场时间（UTC）", "Required by (UTC)"},
	"f.dispatch.spec.required_by.help":        {"技术员须在此时间前到场（或开始远程服务）。", "When the technician must be on site (or the remote session started)."},
	"f.dispatch.spec.quantity":                {"设备数量", "Quantity"},
	"f.dispatch.spec.equipment_model":         {"设备型号", "Equipment model"},
	"f.dispatch.spec.serial_numbers":          {"序列号", "Serial numbers"},
	"f.dispatch.spec.serial_numbers.help":     {"多个用逗号或空格分隔。", "Several: separate with commas or spaces."},
	"f.dispatch.spec.product_line":            {"产品线", "Product line"},
	"f.dispatch.spec.product_line.help":       {"与区域一起用于匹配技术员。", "Matched with the region to find a technician."},
	"f.dispatch.spec.region":                  {"区域", "Region"},
	"f.dispatch.spec.customer_organisation":   {"客户单位", "Customer organisation"},
	"f.dispatch.spec.preferred_technician_id": {"指定技术员（可选）", "Preferred technician (optional)"},
	"f.rootcause.what":                        {"什么（What）：发生了什么", "What happened"},
	"f.rootcause.why":                         {"为什么（Why）：根本原因", "Why: the root cause"},
	"f.rootcause.where":                       {"哪里（Where）", "Where"},
	"f.rootcause.when":                        {"何时（When）", "When"},
	"f.rootcause.who":                         {"谁/哪一环节（Who）", "Who (or which step)"},
	"f.rootcause.how":                         {"如何（How）：怎样纠正和预防", "How it is corrected and prevented"},
	"f.hold.reason":                           {"挂起原因", "Reason"},
	"f.hold.note":                             {"备注", "Note"},
	"f.resolve.resolution_code":               {"解决代码", "Resolution code"},
	"f.resolve.resolution_code.help":          {"例如 REPAIRED、REPLACED、REFUNDED。", "E.g. REPAIRED, REPLACED, REFUNDED."},
	"f.resolve.summary":                       {"解决摘要", "Summary"},
	"f.reassign.team":                         {"目标团队", "Team"},
	"f.reassign.team.help":                    {"留空则保持当前团队。", "Empty keeps the current team."},
	"f.reassign.owner":                        {"新负责人", "New owner"},
	"f.reassign.owner.help":                   {"留空则由系统在团队内挑选。", "Empty lets routing pick within the team."},
	"f.reassign.reason":                       {"改派原因", "Reason"},
	"opt.SERVICE_MODE_ON_SITE":                {"上门（硬件）", "On site (hardware)"},
	"opt.SERVICE_MODE_REMOTE":                 {"远程（软件）", "Remote (software)"},
	"opt.SERVICE_TYPE_REPAIR":                 {"维修", "Repair"},
	"opt.SERVICE_TYPE_INSTALLATION":           {"安装", "Installation"},
	"opt.SERVICE_TYPE_COMMISSIONING":          {"调试", "Commissioning"},
	"opt.SERVICE_TYPE_MAINTENANCE":            {"保养", "Maintenance"},
	"opt.SERVICE_TYPE_REMOTE_SUPPORT":         {"远程支持", "Remote support"},
	"opt.HOLD_REASON_WAITING_FOR_CUSTOMER":    {"等待客户", "Waiting for the customer"},
	"opt.HOLD_REASON_WAITING_FOR_PARTS":       {"等待配件", "Waiting for parts"},
	"done.dispatch":                           {"已申请派工。", "Dispatch requested."},
	"done.rootcause":                          {"已记录根因。", "Root cause recorded."},
	"done.hold":                               {"已挂起。", "Put on hold."},
	"done.unhold":                             {"已解除挂起。", "Taken off hold."},
	"done.resolve":                            {"已解决。", "Resolved."},
	"done.reassign":                           {"已改派。", "Reassigned."},
	"onhold":                                  {"挂起原因：", "On hold:"},
	"err.notfound":                            {"找不到：", "Not found: "},
	// team.go: the team lead's pages
	"nav.team":             {"团队", "Team"},
	"team.title":           {"团队", "Team"},
	"team.choose":          {"团队", "Team"},
	"team.open":            {"打开", "Open"},
	"team.none":            {"您不在任何团队的名册上。", "You are on no team's roster."},
	"team.notyours":        {"您不能查看或管理该团队。", "You may not see or manage this team."},
	"team.queue":           {"团队队列", "Team queue"},
	"team.unassigned":      {"未分派", "Unassigned"},
	"team.escalated":       {"已升级", "Escalated"},
	"team.board":           {"SLA 时钟看板", "SLA clock board"},
	"team.board.help":      {"按 SLA 时钟已用时间分组（工作时间，由 SLA 时钟计算）。", "Running clocks by how much of their time is used (business time, as the SLA clock counts it)."},
	"team.board.more":      {"仅列出截止最近的 500 条投诉，共", "Only the 500 complaints due soonest are listed; in all:"},
	"team.band.breached":   {"已超时", "Breached"},
	"team.band.90":         {"≥ 90 %", "≥ 90 %"},
	"team.band.75":         {"≥ 75 %", "≥ 75 %"},
	"team.band.50":         {"≥ 50 %", "≥ 50 %"},
	"team.more":            {"仅显示前 50 条，查看全部：", "First 50 shown; all of them: "},
	"team.reviews":         {"待我审核", "Reviews waiting for me"},
	"team.reviews.none":    {"没有待您审核的方案。", "No solutions wait for your review."},
	"team.proposedby":      {"提出人", "Proposed by"},
	"team.level":           {"审核级别", "Review level"},
	"team.own":             {"这是您提出的方案：须由他人审核（四眼原则）。", "You proposed this solution: someone else must review it (four eyes)."},
	"team.reviewed":        {"您已审核过此方案的另一级别：须由他人审核（四眼原则）。", "You gave another level of this solution's review: someone else must give this one (four eyes)."},
	"team.comment":         {"意见（驳回时必填）", "Comment (required to reject)"},
	"team.approve":         {"批准", "Approve"},
	"team.reject":          {"驳回", "Reject"},
	"team.review":          {"审核", "Review"},
	"team.reassign":        {"改派", "Reassign"},
	"team.reassign.help":   {"改派给本团队的成员，须说明原因。", "Move a complaint to a member of this team, with a reason."},
	"team.complaint":       {"投诉", "Complaint"},
	"team.newowner":        {"新负责人", "New owner"},
	"team.reason":          {"原因", "Reason"},
	"team.onshift":         {"在班", "on shift"},
	"team.offshift":        {"不在班", "off shift"},
	"team.load":            {"在办", "open"},
	"team.roster":          {"团队名册", "Team roster"},
	"roster.member":        {"成员编号", "Member id"},
	"roster.name":          {"姓名", "Name"},
	"roster.role":          {"角色", "Role"},
	"roster.skills":        {"技能", "Skills"},
	"roster.skills.help":   {"用逗号分隔，例如 product, service", "Separated by commas, e.g. product, service"},
	"roster.shift":         {"班次", "Shift"},
	"roster.load":          {"在办投诉", "Open complaints"},
	"roster.puton":         {"上班", "Put on shift"},
	"roster.putoff":        {"下班", "Take off shift"},
	"roster.save":          {"添加或更新成员", "Add or update a member"},
	"roster.save.help":     {"名册上已有的成员：更新技能、角色和班次（姓名不变）；否则添加。", "A member already on the roster: skills, role and shift are updated (the name stays); otherwise added."},
	"roster.onshift":       {"在班", "On shift"},
	"roster.empty":         {"名册上没有成员。", "No one is on the roster."},
	"review.approved":      {"已批准", "approved"},
	"review.rejected":      {"已驳回", "rejected"},
	"review.waiting":       {"待审核：", "waiting for"},
	"col.review":           {"方案审核", "Solution review"},
	"done.team.approved":   {"已批准方案。", "Solution approved."},
	"done.team.rejected":   {"已驳回方案。", "Solution rejected."},
	"done.team.reassigned": {"已改派。", "Complaint reassigned."},
	"done.team.shift":      {"已更新班次。", "Shift updated."},
	"done.team.member":     {"已保存成员。", "Member saved."},
}

func msg(lang, key string) string {
	m, ok := messages[key]
	if !ok {
		return key
	}
	if lang == langEN {
		return m[1]
	}
	return m[0]
}

// langOf is the language the person chose (cookie), else the browser's
// first preference among Chinese and English, else Chinese.
func langOf(r *http.Request) string {
	if c, err := r.Cookie(langCookie); err == nil && (c.Value == langZH || c.Value == langEN) {
		return c.Value
	}
	type pref struct {
		lang string
		q    float64
	}
	var prefs []pref
	for _, part := range strings.Split(r.Header.Get("Accept-Language"), ",") {
		tag, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		q := 1.0
		if v, ok := strings.CutPrefix(strings.TrimSpace(params), "q="); ok {
			if f, err := strconv.ParseFloat(v, 64); err == nil {
				q = f
			}
		}
		base, _, _ := strings.Cut(strings.ToLower(tag), "-")
		if (base == langZH || base == langEN) && q > 0 {
			prefs = append(prefs, pref{base, q})
		}
	}
	sort.SliceStable(prefs, func(i, j int) bool { return prefs[i].q > prefs[j].q })
	if len(prefs) > 0 {
		return prefs[0].lang
	}
	return langZH
}

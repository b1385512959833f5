// The one source of the pages' Chinese labels (desk, admin, supervisor import them from here).
export const CATEGORIES = ["咨询", "建议", "举报", "投诉", "求助"];
export const URGENCY_NAMES = {normal: "一般", urgent: "加急", emergency: "紧急"};
export const DISPATCH_MODE_NAMES = {direct: "直派", dual: "双派"};
export const MERGE_MODE_NAMES = {primary: "主号", retired: "整体并入", dual_number: "双号并行", sub_centre: "设分中心"};
export const TICKET_STATUS_NAMES = {draft: "待处理", submitted: "已派单", answered: "已答复办结"};
export const CONFIG_STATUS_NAMES = {applied: "已生效", scheduled: "已计划", cancelled: "已取消", failed: "失败"};
export const TRANSCRIPT_STATUS_NAMES = {none: "无转写 no transcript", pending: "转写中 pending", done: "已转写 done",
  failed: "转写失败 failed"};
export const UNIT_KIND_NAMES = {street: "街道", township: "乡镇", district: "区政府", city_department: "市级部门",
  police: "公安", enterprise: "企事业"};
export const ROLE_NAMES = {agent: "话务员", supervisor: "班长", admin: "管理员", unit: "承办单位"};
// After dispatch (the unit page /unit and the supervisor's review and 督办 sections).
export const HANDLING_NAMES = {dispatched: "已派发", accepted: "办理中", review: "待审核", handled: "已办结",
  closed: "已关闭"};
export const DISPATCH_STATUS_NAMES = {sent: "待签收", accepted: "已签收", objected: "已提异议", handled: "已办结",
  withdrawn: "已撤回"};
export const UNIT_LIST_NAMES = {new: "待签收 new", accepted: "办理中 accepted", overdue: "已超期 overdue",
  handled: "已办结 handled", objected: "异议中 objected", all: "全部 all"};
export const EVENT_KIND_NAMES = {dispatched: "派单", accepted: "签收", objected: "派单异议", note: "进展",
  handled: "办结", redispatched: "改派", closed: "关闭", reminder: "到期提醒", overdue: "超期", followup: "回访",
  review: "审核", sms: "短信", withdrawn: "撤回", rejected: "驳回异议"};
export const REVIEW_REASON_NAMES = {objection: "派单异议", no_unit: "无承办单位", unsolved: "回访未解决",
  unsatisfied: "回访不满意"};
// A callback instead of waiting (virtual hold): its statuses, and the desk's label of a called-back caller.
export const CALLBACK_STATUS_NAMES = {waiting: "等待回拨", dialling: "正在回拨", connected: "已接通排队",
  no_answer: "无人接听", failed: "回拨失败", cancelled: "已取消", done: "已转人工"};
export const CALLBACK_LABEL = "回拨 callback";

/** "整体并入 retired" for a known key, the key itself otherwise. */
export function label(names, key) { return names[key] ? `${names[key]} ${key}` : String(key ?? ""); }

// English glosses beside the Chinese labels of the desk's form options (desk: "建议 suggestion").
export const CATEGORY_EN = {咨询: "consultation", 建议: "suggestion", 举报: "report", 投诉: "complaint", 求助: "help"};
export const UNIT_KIND_EN = {street: "street", township: "township", district: "district",
  city_department: "city dept.", police: "police", enterprise: "enterprise"};

// Ticket numbers and texts to callers (issue 13).
export const TICKET_NO_LABEL = "工单号 Ticket No.";
export const ANNOUNCE_NUMBER_LABEL = "向来电人播报工单号 Read to caller";
export const SMS_STATUS_NAMES = {pending: "待发送", sending: "发送中", sent: "已发送", failed: "发送失败待重试", dead: "已放弃"};
export const SMS_KIND_NAMES = {ticket_no: "工单号", renumbered: "工单号更正"};
/** 0512 345 6789: a ticket number as it is read out (4-3-4). */
export function groupedTicketNo(no) { const s = String(no ?? ""); return s.length === 11 ? `${s.slice(0, 4)} ${s.slice(4, 7)} ${s.slice(7)}` : s; }
// The follow-up (回访, issue 13): the row's status, the citizen's answers, why a ticket is under review.
export const FOLLOWUP_STATUS_NAMES = {pending: "待安排", scheduled: "待回访", calling: "回访中", done: "已回访",
  unreachable: "未接通", refused: "拒绝回访", cancelled: "已取消"};
export const SOLVED_NAMES = {yes: "已解决", no: "未解决"};
export const SATISFACTION_NAMES = {satisfied: "满意", basic: "基本满意", unsatisfied: "不满意"};

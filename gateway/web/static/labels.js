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
export const ROLE_NAMES = {agent: "话务员", supervisor: "班长", admin: "管理员"};

/** "整体并入 retired" for a known key, the key itself otherwise. */
export function label(names, key) { return names[key] ? `${names[key]} ${key}` : String(key ?? ""); }

// English glosses beside the Chinese labels of the desk's form options (desk: "建议 suggestion").
export const CATEGORY_EN = {咨询: "consultation", 建议: "suggestion", 举报: "report", 投诉: "complaint", 求助: "help"};
export const UNIT_KIND_EN = {street: "street", township: "township", district: "district",
  city_department: "city dept.", police: "police", enterprise: "enterprise"};

// The follow-up (回访, issue 13): the row's status, the citizen's answers, why a ticket is under review.
export const FOLLOWUP_STATUS_NAMES = {pending: "待安排", scheduled: "待回访", calling: "回访中", done: "已回访",
  unreachable: "未接通", refused: "拒绝回访", cancelled: "已取消"};
export const SOLVED_NAMES = {yes: "已解决", no: "未解决"};
export const SATISFACTION_NAMES = {satisfied: "满意", basic: "基本满意", unsatisfied: "不满意"};
export const REVIEW_REASON_NAMES = {unsolved: "回访未解决", unsatisfied: "回访不满意", objection: "派单异议"};

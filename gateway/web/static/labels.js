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

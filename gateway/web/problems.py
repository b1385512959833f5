"""What an error looks like on the wire, in English and Chinese.

Every error answered at the web edge has one shape (the pages rely on it)::

    {"error": "<id>", "message": "<English>", "message_zh": "<中文>",
     "details": {"problems": [{"path": "lines[2].queue", "field": "queue",
                               "message": "<English>", "message_zh": "<中文>"}, ...], ...}}

``problems`` lists every problem found at once: a request body that does not fit
its schema (:mod:`gateway.web.schema`), a configuration that would be invalid
(those problems also carry ``file`` and ``line``), or the one field a service
refused with live state (an unknown line, a stale version: ``details.field``).
An error about no particular field has ``details`` without ``problems``.

Chinese comes, in this order, from the error itself (``message_zh``), from the
Chinese half of a bilingual message (``"English / 中文"`` or ``"中文 / English"``),
or from :data:`ERROR_ZH`, one sentence per error id.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, Field

from gateway.errors import GatewayError
from gateway.masking import mask_text

# One Chinese sentence per error id: what the agent or admin is told when the error has no
# Chinese of its own. tests/unit/test_schema.py checks every error_id in the gateway is here.
ERROR_ZH: dict[str, str] = {
    "gateway-error": "网关出错",
    "internal": "服务器内部错误，请稍后再试",
    "bad-request": "请求有误",
    "invalid-request": "请求内容不符合要求",
    "not-found": "未找到",
    "conflict": "与当前数据冲突（可能已被他人修改），请刷新后再试",
    "unknown-unit": "不是职责目录中的承办单位",
    "call-exists": "该来电已有记录",
    "ticket-decided": "该工单已处理",
    "invalid-config": "配置有误，未做任何修改",
    "invalid-setting": "设置值有误",
    "ami-not-connected": "未连接到 Asterisk（AMI），请稍后再试",
    "ami-timeout": "Asterisk（AMI）响应超时",
    "pbx-error": "Asterisk 拒绝或未能执行请求",
    "asterisk-unavailable": "Asterisk 不可用，未做任何修改",
    "not-your-call": "只有接听该来电的坐席和班长可以查看来电内容",
    "call-ended": "来电已挂断，无法转接",
    "already-transferred": "该来电已经转接过了",
    "unknown-service": "没有为该紧急服务配置转接去向",
    "locked": "此草稿由其他坐席受理中",
    "csrf": "CSRF 令牌缺失或错误，请刷新页面",
    "forbidden": "您的角色无权执行此操作",
    "unauthenticated": "请先登录",
    "bad-login": "用户名或密码错误",
    "too-many-attempts": "尝试次数过多，请稍后再试",
    "auth-error": "认证出错",
    "invalid-user": "用户名、角色或密码不符合规则",
    "user-exists": "用户已存在",
    "last-admin": "不能删除或降级最后一个管理员",
    "bad-change": "修改内容有误，未做任何修改",
    "bad-dry-run": "试运行参数有误",
    "comment-required": "每次修改都需要填写备注说明原因",
    "no-change": "此修改不会改变当前配置",
    "unknown-host": "本网关不服务该主机名",
    "agi-command-error": "AGI 命令出错",
    "agi-timeout": "AGI 响应超时",
    "speech-unavailable": "语音识别不可用",
    "speech-overloaded": "语音识别繁忙",
    "speech-stream-failed": "语音流处理失败",
    "speech-timeout": "语音识别超时",
    "speech-bad-input": "语音输入有误",
    "speech-bad-audio-file": "音频文件有误",
    "speech-model-refused": "语音模型被拒绝",
    "tts-error": "语音合成出错",
    "tts-model": "语音合成模型出错",
    "followup-done": "该工单已回访过，不重复回访",
    "report-font-missing": "缺少中文字体（fonts-wqy-microhei），无法生成 PDF 报告",
    "followup-calling": "该工单正在回访通话中，请稍后再试",
    "followup-conflict": "回访状态不允许此操作",
    "not-handled": "工单尚未办结，不能回访",
    "bad-followup-answer": "回访结果的取值有误",
    "bad-outbound-call": "外呼的号码、用途或参数有误，未拨出",
    "sms-sender": "短信发送通道配置有误",
    "no-ticket-number": "该工单没有工单号",
    "callback-not-open": "该回拨已结束或已取消，无法再更改",
    "warning-state": "该预警的状态不允许此操作（可能已被他人签收或转交），请刷新后再试",
    "bad-rates-query": "三率查询参数有误（统计层级、周期、日期或指标）",
    "bad-figures-query": "统计时段或参数有误",
}
GENERIC_ZH = "请求未能完成"

_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff\u3000-\u303f\uff00-\uffef]")


def split_bilingual(message: str) -> tuple[str, str | None]:
    """``("English", "中文")`` of a message written as ``"English / 中文"`` or ``"中文 / English"``;
    ``(message, None)`` when it is not one of those."""
    parts = message.split(" / ")
    if len(parts) != 2:
        return message, None
    first, second = (p.strip() for p in parts)
    zh_first, zh_second = bool(_CJK.search(first)), bool(_CJK.search(second))
    if zh_second and not zh_first:
        return first, second
    if zh_first and not zh_second:
        return second, first
    return message, None


def zh_of(exc: GatewayError) -> str:
    own = getattr(exc, "message_zh", None)
    if own:
        return own
    _, zh = split_bilingual(exc.message)
    return zh or ERROR_ZH.get(exc.error_id, GENERIC_ZH)


def _last_field(path: str) -> str:
    """``lines[2].queue`` -> ``queue``; ``units[0]`` -> ``units``."""
    name = re.sub(r"\[[^\]]*\]$", "", path).rsplit(".", 1)[-1]
    return re.sub(r"\[[^\]]*\]", "", name)


def _problem(problem: dict, error_zh: str) -> dict:
    """A problem dict completed to the contract (``path``, ``field``, ``message_zh``)."""
    out = dict(problem)
    if "path" not in out:  # a configuration problem: its "field" is the whole path (lines[2].queue)
        out["path"] = str(out.get("field") or "")
        out["field"] = _last_field(out["path"]) or out["path"]
    out.setdefault("field", _last_field(out["path"]))
    if not out.get("message_zh"):
        en, zh = split_bilingual(str(out.get("message", "")))
        out["message_zh"] = zh or error_zh
    return out


def error_body(exc: GatewayError) -> dict:
    """The JSON answer for ``exc`` (messages masked: they may quote what a caller said)."""
    zh = zh_of(exc)
    details: dict[str, Any] = dict(exc.details or {})
    if isinstance(details.get("problems"), list):
        details["problems"] = [_problem(p, ERROR_ZH.get(exc.error_id, GENERIC_ZH)) if isinstance(p, dict) else p
                               for p in details["problems"]]
    elif isinstance(details.get("field"), str) and details["field"]:
        en, _ = split_bilingual(exc.message)
        details["problems"] = [_problem({"path": details["field"], "message": en, "message_zh": zh}, zh)]
    return {"error": exc.error_id, "message": mask_text(exc.message), "message_zh": mask_text(zh),
            "details": details}


def plain_body(error_id: str, message: str, message_zh: str | None = None, details: dict | None = None) -> dict:
    """The same shape for an answer that is no :class:`GatewayError` (CSRF, unknown host, 500)."""
    return {"error": error_id, "message": message,
            "message_zh": message_zh or ERROR_ZH.get(error_id, GENERIC_ZH), "details": details or {}}


def internal_body() -> dict:
    return plain_body("internal", "internal error")


# -- the shape, for the OpenAPI document ------------------------------------------------------
class Problem(BaseModel):
    path: str = Field(description="where in the body (lines[2].queue), or the field of the URL or configuration")
    field: str = Field(description="the last name of the path (queue)")
    message: str
    message_zh: str
    file: str | None = Field(None, description="configuration problems: the file")
    line: int | None = Field(None, description="configuration problems: the line")


class ErrorDetails(BaseModel):
    problems: list[Problem] = Field(default_factory=list, description="every problem found, when there are any")
    field: str | None = Field(None, description="the first problem's field (older clients)")


class Error(BaseModel):
    """Every error the API answers."""

    error: str = Field(description="a stable id: bad-request, not-found, conflict, invalid-config, locked, ...")
    message: str = Field(description="English")
    message_zh: str = Field(description="中文")
    details: ErrorDetails

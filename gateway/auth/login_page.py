"""The login page (``GET /login``): a form that works without script, with a nonce'd script
that logs in over JSON and says why a login was refused."""

from __future__ import annotations

import html
import re
import secrets

from aiohttp import web

from gateway.auth.brake import SCOPES
from gateway.auth.http import DEFAULT_NEXT, safe_next


_LOGIN_PAGE = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>12345 热线网关 登录 Sign in</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{font-family:"WenQuanYi Micro Hei","Noto Sans CJK SC",sans-serif;background:#f3f5f8;margin:0}
main{max-width:360px;margin:12vh auto;background:#fff;padding:28px 32px;border-radius:8px;box-shadow:0 2px 10px #0002}
h1{font-size:20px;margin:0 0 18px}label{display:block;margin:12px 0 4px}input{width:100%;padding:8px;box-sizing:border-box}
button{margin-top:18px;width:100%;padding:10px;background:#1d5fbf;color:#fff;border:0;border-radius:4px;font-size:15px}
.err{color:#b00020;margin-top:12px;min-height:1em}</style></head>
<body><main><h1>12345 热线网关 登录 <small>Sign in</small></h1>
<form method="post" action="/api/login" id="login">
<input type="hidden" name="next" id="next" value="__NEXT__">
<label for="username">用户名 Username</label><input id="username" name="username" autocomplete="username" required>
<label for="password">密码 Password</label><input id="password" name="password" type="password"
 autocomplete="current-password" required>
<button type="submit">登录 Sign in</button>
<p class="err" id="error" role="alert">__ERROR__</p></form></main>
<script nonce="__NONCE__">
(function () {
  var form = document.getElementById("login"), error = document.getElementById("error");
  function local(p) { return /^\\/(?![\\/\\\\])[^\\\\\\s]*$/.test(p) ? p : "__DEFAULT__"; }
  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    error.textContent = "";
    fetch("/api/login", {method: "POST", credentials: "same-origin", headers: {"Content-Type": "application/json"},
      body: JSON.stringify({username: form.username.value, password: form.password.value})})
      .then(function (resp) {
        if (resp.ok) {
          resp.json().then(function (b) { location.assign(local(document.getElementById("next").value || b.next)); });
          return;
        }
        if (resp.status === 429) {
          resp.json().then(function (b) { error.textContent = b.message || "__THROTTLED__"; },
                           function () { error.textContent = "__THROTTLED__"; });
          return;
        }
        error.textContent = "__FAILED__";
      })
      .catch(function () { error.textContent = "网络错误 Network error"; });
  });
})();
</script></body></html>
"""
_MESSAGES = {"1": "用户名或密码错误 Wrong username or password",
             "throttled": "尝试次数过多，请一分钟后再试 Too many attempts, wait a minute"}


def _failure_message(query) -> str:
    failed = query.get("failed", "")
    wait = query.get("wait", "")
    scope = query.get("scope", "")
    if failed == "throttled" and re.fullmatch(r"[0-9]{1,5}", wait) and scope in SCOPES:
        zh, en = SCOPES[scope]
        return f"{zh}登录失败次数过多，请 {wait} 秒后再试 Too many failed logins for {en}: try again in {wait} s"
    return _MESSAGES.get(failed, "")


async def login_page(request: web.Request) -> web.Response:
    nonce = secrets.token_urlsafe(16)
    asked = request.query.get("next")
    page = (_LOGIN_PAGE.replace("__NEXT__", html.escape(safe_next(asked) if asked else "", quote=True))
            .replace("__ERROR__", html.escape(_failure_message(request.query)))
            .replace("__FAILED__", _MESSAGES["1"]).replace("__THROTTLED__", _MESSAGES["throttled"])
            .replace("__DEFAULT__", DEFAULT_NEXT).replace("__NONCE__", nonce))
    csp = (f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'unsafe-inline'; connect-src 'self'; "
           "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
    return web.Response(text=page, content_type="text/html", headers={
        "Cache-Control": "no-store", "Content-Security-Policy": csp, "X-Frame-Options": "DENY",
        "Referrer-Policy": "same-origin"})

"""The HTTP load benchmark sends the requests a real browser would: every
callback it names is one the app registers, with inputs that callback has,
on a page the sending role may open (so a renamed component cannot turn the
benchmark into a measurement of refusals)."""

from __future__ import annotations

from benchmarks.bench_http_load import PLANS, UPDATE, find_callback
from dashboard import access
from tests.support.web import page_of_callback, server_callbacks


def test_http_load_plans_name_registered_callbacks_the_role_may_call(web_app) -> None:
    callbacks = server_callbacks(web_app)
    deps = [{"output": k, "inputs": v["inputs"], "state": v.get("state", [])}
            for k, v in callbacks.items()]
    for role, plan in PLANS.items():
        for method, path, call in plan:
            if call is None:
                assert method == "GET"
                if path != "/_dash-layout":
                    page = access.page_for_path(path)
                    assert page is not None and access.role_may_open(role, page), (role, path)
                continue
            assert (method, path) == ("POST", UPDATE)
            output_id, values = call
            dep = find_callback(deps, output_id)
            declared = {f"{i['id']}.{i['property']}" for i in dep["inputs"] + dep["state"]}
            assert set(values) <= declared, (output_id, set(values) - declared)
            entry = callbacks[dep["output"]]
            assert role in (access.callback_roles(entry["callback"]) or ()), (role, output_id)
            page = page_of_callback(entry)  # None for the shell's own callbacks
            assert page is None or access.role_may_open(role, page), (role, output_id)

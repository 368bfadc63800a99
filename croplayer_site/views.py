"""Site-level pages: home (campaigns and the user's role) and a health check."""

from django.contrib.auth.decorators import login_required
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from croplayer_site.roles import user_roles
from mapping.access import campaign_list_for_user


@login_required
def home(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "home.html",
        {
            "campaigns": campaign_list_for_user(user=request.user),
            "roles": user_roles(request.user),
        },
    )


def healthz(request: HttpRequest) -> JsonResponse:
    """The web process answers (HTTP 200 while its database does); ``status`` is ``ok`` only
    when the broker answers and at least one Celery worker beat within the last seconds,
    else ``degraded`` with the problems (a round would wait forever without a worker)."""
    from croplayer_site.liveness import workers_alive

    with connection.cursor() as cur:
        cur.execute("SELECT 1")
    alive = workers_alive()
    problems = []
    if not alive["ok"]:
        problems.append(f"broker unreachable: {alive['error']}")
    elif not alive["workers"]:
        problems.append("no live Celery worker: rounds, imagery fetches and exports wait")
    return JsonResponse({
        "status": "degraded" if problems else "ok",
        "database": connection.vendor,
        "broker": "ok" if alive["ok"] else "unreachable",
        "workers": alive["workers"],
        "worker_queues": alive["queues"],
        "problems": problems,
    })

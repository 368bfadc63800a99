"""HTML pages of the mapping app: the block viewer."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from rest_framework.exceptions import NotFound

from mapping.models import ImagerySource
from mapping.selectors import block_get_for_user


@login_required
def block_view(request: HttpRequest, block_id: int) -> HttpResponse:
    try:
        block = block_get_for_user(user=request.user, block_id=block_id)
    except NotFound as e:
        raise Http404(str(e)) from e
    sources = ImagerySource.objects.filter(images__block=block, images__status="ok").distinct()
    return render(request, "mapping/block.html", {"blk": block, "sources": sources})

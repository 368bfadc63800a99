"""HTML pages of the mapping app: the block viewer."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from mapping.access import block_get_for_user
from mapping.models import ImagerySource


@login_required
def block_view(request: HttpRequest, block_id: int) -> HttpResponse:
    block = block_get_for_user(user=request.user, block_id=block_id)
    sources = ImagerySource.objects.filter(images__block=block, images__status="ok").distinct()
    return render(request, "mapping/block.html", {"blk": block, "sources": sources})

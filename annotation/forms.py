"""Forms of the leads' pages: uploading a sample file, committing it, assigning blocks."""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.contrib.auth import get_user_model
from django.db.models import Q, QuerySet
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from annotation.access import WRITE_ROLES
from annotation.services.assigning import MAX_BLOCKS
from annotation.transfer import MAX_UPLOAD_BYTES
from mapping.models import Block, Campaign, ImagerySource

BLOCK_CODE = re.compile(r"^R(\d+)C(\d+)$", re.IGNORECASE)
SEPARATORS = re.compile(r"[\s,;]+")


class SamplesUploadForm(forms.Form):
    file = forms.FileField(
        label=_("File"),
        widget=forms.ClearableFileInput(attrs={"accept": ".gpkg,.zip,.geojson,.json"}),
    )
    source = forms.ModelChoiceField(
        label=_("Imagery source"),
        queryset=ImagerySource.objects.order_by("slug"),
        to_field_name="slug",
        empty_label=None,
        help_text=_("The imagery the polygons were drawn on (a 'source' column overrides it)"),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Interpolated here, in the request's language (a lazy string would be fixed at import).
        self.fields["file"].help_text = _(
            "GeoPackage (.gpkg), zipped Shapefile with its .prj (.zip; reprojected to WGS 84) "
            "or GeoJSON (.geojson, .json), at most %(mb)s MB"
        ) % {"mb": MAX_UPLOAD_BYTES // 2**20}


class SamplesCommitForm(forms.Form):
    skip_rejected = forms.BooleanField(
        label=_("Import the accepted features without the rejected ones"), required=False
    )


def assignable_people() -> QuerySet[Any]:
    """People who may work on blocks: an annotator, lead or admin role (or superuser)."""
    return (
        get_user_model()
        .objects.filter(Q(groups__name__in=WRITE_ROLES) | Q(is_superuser=True), is_active=True)
        .distinct()
        .order_by("username")
    )


class _PersonChoice(forms.ModelChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        return obj.get_username()


class _PeopleChoice(forms.ModelMultipleChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        return obj.get_username()


class AssignBlocksForm(forms.Form):
    blocks = forms.CharField(
        label=_("Blocks"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text=_(
            "Block ids or codes (R2386C5850), separated by spaces, commas or new lines. "
            "Or leave empty and choose a number of unassigned blocks below."
        ),
    )
    count = forms.IntegerField(
        label=_("Number of unassigned blocks"),
        required=False,
        min_value=1,
        max_value=MAX_BLOCKS,
        help_text=_(
            "The first blocks nobody was given yet, in queue order (the latest round's "
            "selection, the systematic sample, then the seed order)"
        ),
    )
    province = forms.TypedChoiceField(
        label=_("Province"),
        required=False,
        coerce=int,
        empty_value=None,
        help_text=_("Only for the number of unassigned blocks"),
    )
    users = _PeopleChoice(
        label=_("Annotators"),
        queryset=assignable_people(),
        to_field_name="username",
        widget=forms.CheckboxSelectMultiple,
        help_text=_("With several people, the blocks are shared out among them in turn."),
    )
    priority = forms.IntegerField(
        label=_("Priority"),
        required=False,
        min_value=1,
        help_text=_("Queue rank, 1 first; empty: each block's seed order"),
    )
    second = _PersonChoice(
        label=_("Second annotator for agreement"),
        queryset=assignable_people(),
        to_field_name="username",
        required=False,
        empty_label=_("nobody"),
        help_text=_(
            "Also gives a share of each person's new blocks to this person, who draws blind"
        ),
    )
    second_percent = forms.FloatField(
        label=_("Share for the second annotator (%)"),
        required=False,
        min_value=0.001,
        max_value=100,
        initial=10,
    )

    def __init__(self, *args: Any, campaign: Campaign, provinces: list[Any], **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.campaign = campaign
        self.fields["province"].choices = [("", _("all provinces"))] + [
            (p["adcode"], p["label"]) for p in provinces
        ]

    def clean_blocks(self) -> list[int]:
        tokens = [t for t in SEPARATORS.split(self.cleaned_data.get("blocks") or "") if t]
        if len(tokens) > MAX_BLOCKS:
            raise forms.ValidationError(
                _("At most %(max)s blocks at once."), params={"max": MAX_BLOCKS}
            )
        ids: list[int] = []
        cells: list[tuple[int, int]] = []
        bad: list[str] = []
        for t in tokens:
            if t.isdigit():
                ids.append(int(t))
            elif m := BLOCK_CODE.match(t):
                cells.append((int(m[1]), int(m[2])))
            else:
                bad.append(t)
        qs = Block.objects.filter(campaign=self.campaign)
        known_ids = set(qs.filter(pk__in=ids).values_list("pk", flat=True))
        by_cell: dict[tuple[int, int], int] = {}
        if cells:
            rows = {r for r, _c in cells}
            for pk, row, col in qs.filter(row__in=rows).values_list("pk", "row", "col"):
                by_cell[(row, col)] = pk
        out: list[int] = []
        for t in tokens:
            if t in bad:
                continue
            m = BLOCK_CODE.match(t)
            pk = int(t) if m is None else by_cell.get((int(m[1]), int(m[2])))
            if pk is None or (m is None and pk not in known_ids):
                bad.append(t)
            else:
                out.append(pk)
        if bad:
            raise forms.ValidationError(
                ngettext(
                    "Not a block of this campaign: %(blocks)s",
                    "Not blocks of this campaign: %(blocks)s",
                    len(bad),
                ),
                params={"blocks": ", ".join(bad[:20]) + (" …" if len(bad) > 20 else "")},
            )
        return list(dict.fromkeys(out))

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        blocks, count = data.get("blocks"), data.get("count")
        if "blocks" in data and "count" in data:
            if blocks and count:
                raise forms.ValidationError(_("Give block ids or a number of blocks, not both."))
            if not blocks and not count:
                raise forms.ValidationError(_("Give block ids or a number of blocks."))
        second, users = data.get("second"), data.get("users") or []
        if second is not None:
            if second in users:
                self.add_error(
                    "second", _("The second annotator cannot also be one of the annotators.")
                )
            if not data.get("second_percent"):
                self.add_error("second_percent", _("Give the share for the second annotator."))
        return data


class SelfAssignForm(forms.Form):
    self_assign = forms.BooleanField(
        label=_("Annotators may claim the next unassigned block themselves"), required=False
    )

"""REST endpoints for the work flow: assigning blocks, listing assignments, start, submit and
review, and a worker's next block."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.access import (
    StateConflict,
    assignees_resolve,
    assignment_get_for_user,
    assignment_list_for_user,
    campaign_get_for_lead,
    campaign_get_for_worker,
)
from annotation.models import Assignment, AssignmentStatus
from annotation.services import (
    AssignmentRefused,
    TransitionRefused,
    assignment_create,
    assignment_review,
    assignment_start,
    assignment_submit,
    block_next_for_user,
)
from croplayer_site.pagination import BoundedLimitOffsetPagination


class AssignmentOutputBase(serializers.ModelSerializer):
    block_code = serializers.CharField(source="block.code")
    campaign = serializers.CharField(source="block.campaign.slug")
    user = serializers.CharField(source="user.username")
    assigned_by = serializers.CharField(source="assigned_by.username", allow_null=True)
    reviewed_by = serializers.CharField(source="reviewed_by.username", allow_null=True)

    class Meta:
        model = Assignment
        fields = [
            "id",
            "block",
            "block_code",
            "campaign",
            "user",
            "status",
            "priority",
            "self_claimed",
            "agreement",
            "assigned_by",
            "created_at",
            "started_at",
            "submitted_at",
            "reviewed_at",
            "reviewed_by",
            "last_review",
            "review_comment",
            "rejections",
        ]


CAMPAIGN_ROUTE = [OpenApiParameter("slug", str, OpenApiParameter.PATH)]
ASSIGNMENT_ROUTE = [OpenApiParameter("assignment_id", int, OpenApiParameter.PATH)]
TRANSITION_ERRORS = {
    403: OpenApiResponse(description="Not yours to do (not the assignee, not a lead, own work)"),
    404: OpenApiResponse(description="No such assignment (or not visible to you)"),
    409: OpenApiResponse(description="Not possible in the assignment's status; reason in detail"),
}


def _transition(call: Callable[[], Assignment], output: type[serializers.Serializer]) -> Response:
    try:
        assignment = call()
    except TransitionRefused as e:
        raise StateConflict(e.reason) from e
    return Response(output(assignment).data)


class CampaignAssignmentCreateApi(APIView):
    class AssignmentCreateInputSerializer(serializers.Serializer):
        blocks = serializers.ListField(
            child=serializers.IntegerField(), min_length=1, max_length=10000
        )
        users = serializers.ListField(
            child=serializers.CharField(max_length=150),
            min_length=1,
            max_length=2,
            help_text="One person, or two for agreement",
        )
        priority = serializers.IntegerField(
            min_value=1,
            required=False,
            allow_null=True,
            default=None,
            help_text="Queue rank (1 first); default: each block's seed order",
        )

    class AssignmentCreatedOutputSerializer(AssignmentOutputBase):
        class Meta(AssignmentOutputBase.Meta):
            pass

    class AssignmentCreateOutputSerializer(serializers.Serializer):
        created = serializers.ListField(child=serializers.DictField())
        skipped = serializers.IntegerField(help_text="Pairs already assigned (left as they were)")

    @extend_schema(
        summary="Assign blocks to people (leads and admins); all or nothing",
        parameters=CAMPAIGN_ROUTE,
        request=AssignmentCreateInputSerializer,
        responses={
            201: AssignmentCreateOutputSerializer,
            400: OpenApiResponse(description="Unknown block of this campaign, or unknown person"),
            403: OpenApiResponse(description="Not a lead or admin"),
            404: OpenApiResponse(description="No such campaign (or not visible to you)"),
            409: OpenApiResponse(description="A block would have more than two people"),
        },
    )
    def post(self, request: Request, slug: str) -> Response:
        campaign = campaign_get_for_lead(user=request.user, slug=slug)
        s = self.AssignmentCreateInputSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        try:
            assignees = assignees_resolve(usernames=s.validated_data["users"])
            created, skipped = assignment_create(
                lead=request.user,
                campaign=campaign,
                block_ids=s.validated_data["blocks"],
                assignees=assignees,
                priority=s.validated_data["priority"],
            )
        except ValueError as e:
            raise ValidationError({"detail": [str(e)]}) from e
        except AssignmentRefused as e:
            raise StateConflict(e.reason) from e
        body = {
            "created": self.AssignmentCreatedOutputSerializer(created, many=True).data,
            "skipped": skipped,
        }
        return Response(
            self.AssignmentCreateOutputSerializer(body).data, status=status.HTTP_201_CREATED
        )


class AssignmentListApi(generics.ListAPIView):
    """Annotators: their own assignments; leads: everyone's in their campaigns; admins: all.
    In queue order."""

    pagination_class = BoundedLimitOffsetPagination

    class AssignmentListOutputSerializer(AssignmentOutputBase):
        class Meta(AssignmentOutputBase.Meta):
            pass

    serializer_class = AssignmentListOutputSerializer

    @extend_schema(
        parameters=[
            OpenApiParameter("campaign", str, description="campaign slug"),
            OpenApiParameter("status", str, enum=AssignmentStatus.values),
            OpenApiParameter("user", str, description="username (leads and admins)"),
        ]
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> QuerySet[Assignment]:
        q = self.request.query_params
        return assignment_list_for_user(
            user=self.request.user,
            campaign_slug=q.get("campaign"),
            status=q.get("status"),
            username=q.get("user"),
        )


class AssignmentStartApi(APIView):
    class AssignmentStartOutputSerializer(AssignmentOutputBase):
        class Meta(AssignmentOutputBase.Meta):
            pass

    @extend_schema(
        summary="Start work on an assigned block (to do -> in progress; the assignee)",
        parameters=ASSIGNMENT_ROUTE,
        request=None,
        responses={200: AssignmentStartOutputSerializer, **TRANSITION_ERRORS},
    )
    def post(self, request: Request, assignment_id: int) -> Response:
        a = assignment_get_for_user(user=request.user, assignment_id=assignment_id, act="work")
        return _transition(
            lambda: assignment_start(user=request.user, assignment=a),
            self.AssignmentStartOutputSerializer,
        )


class AssignmentSubmitApi(APIView):
    class AssignmentSubmitOutputSerializer(AssignmentOutputBase):
        class Meta(AssignmentOutputBase.Meta):
            pass

    @extend_schema(
        summary="Hand the block in for review (in progress -> submitted; the assignee)",
        parameters=ASSIGNMENT_ROUTE,
        request=None,
        responses={200: AssignmentSubmitOutputSerializer, **TRANSITION_ERRORS},
    )
    def post(self, request: Request, assignment_id: int) -> Response:
        a = assignment_get_for_user(user=request.user, assignment_id=assignment_id, act="work")
        return _transition(
            lambda: assignment_submit(user=request.user, assignment=a),
            self.AssignmentSubmitOutputSerializer,
        )


class AssignmentReviewApi(APIView):
    class AssignmentReviewInputSerializer(serializers.Serializer):
        decision = serializers.ChoiceField(choices=["accept", "reject"])
        comment = serializers.CharField(required=False, allow_blank=True, default="")

        def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
            if attrs["decision"] == "reject" and not attrs["comment"].strip():
                raise serializers.ValidationError(
                    {"comment": ["a rejection needs a comment that tells what to fix"]}
                )
            return attrs

    class AssignmentReviewOutputSerializer(AssignmentOutputBase):
        class Meta(AssignmentOutputBase.Meta):
            pass

    @extend_schema(
        summary="Accept, or reject with a comment (back to in progress); leads and admins",
        parameters=ASSIGNMENT_ROUTE,
        request=AssignmentReviewInputSerializer,
        responses={
            200: AssignmentReviewOutputSerializer,
            400: OpenApiResponse(description="Rejection without comment"),
            **TRANSITION_ERRORS,
        },
    )
    def post(self, request: Request, assignment_id: int) -> Response:
        a = assignment_get_for_user(user=request.user, assignment_id=assignment_id, act="review")
        s = self.AssignmentReviewInputSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        return _transition(
            lambda: assignment_review(
                reviewer=request.user,
                assignment=a,
                accept=s.validated_data["decision"] == "accept",
                comment=s.validated_data["comment"],
            ),
            self.AssignmentReviewOutputSerializer,
        )


class CampaignNextBlockApi(APIView):
    class NextBlockAssignmentOutputSerializer(AssignmentOutputBase):
        class Meta(AssignmentOutputBase.Meta):
            pass

    class NextBlockOutputSerializer(serializers.Serializer):
        claimed = serializers.BooleanField(help_text="True if the block was self-assigned now")
        assignment = serializers.DictField()

    @extend_schema(
        summary="Your next block: highest-priority unfinished assignment, else claim one",
        parameters=CAMPAIGN_ROUTE,
        request=None,
        responses={
            200: NextBlockOutputSerializer,
            204: OpenApiResponse(description="Nothing left for you in this campaign"),
            403: OpenApiResponse(description="Your role may not take work"),
            404: OpenApiResponse(description="No such campaign (or not visible to you)"),
        },
    )
    def post(self, request: Request, slug: str) -> Response:
        campaign = campaign_get_for_worker(user=request.user, slug=slug)
        found = block_next_for_user(user=request.user, campaign=campaign)
        if found is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        assignment, claimed = found
        body = {
            "claimed": claimed,
            "assignment": self.NextBlockAssignmentOutputSerializer(assignment).data,
        }
        return Response(self.NextBlockOutputSerializer(body).data)

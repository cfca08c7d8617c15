"""The deploy pipeline: identity → source → build → release, behind a narrow interface."""

from bot.pipeline.model import (
    DeployKind,
    DeployRequest,
    Failure,
    PipelineDeps,
    PipelineResult,
    PlatformResources,
    PollPolicy,
    ProgressSink,
    Stage,
    StageState,
    TenantIdentity,
)
from bot.pipeline.pipeline import ensure_tenant, run_pipeline

__all__ = [
    "DeployKind", "DeployRequest", "Failure", "PipelineDeps", "PipelineResult", "PlatformResources", "PollPolicy",
    "ProgressSink", "Stage", "StageState", "TenantIdentity", "ensure_tenant", "run_pipeline",
]

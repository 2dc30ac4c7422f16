from railyard_trainer.workflows.base import Workflow
from railyard_trainer.workflows.registry import catalogue, get_workflow

__all__ = ["Workflow", "catalogue", "get_workflow"]

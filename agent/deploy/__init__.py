"""The safe replace: journal.py (typed record and steps), replace.py (the state machine), gate.py
(the health gate), recover.py (finish or undo), hooks.py (pre_update and post_update)."""

from agent.deploy.journal import Replacement, Step
from agent.deploy.replace import Deployer, Job
from agent.model import NEW_SUFFIX, OLD_SUFFIX

__all__ = ["NEW_SUFFIX", "OLD_SUFFIX", "Deployer", "Job", "Replacement", "Step"]

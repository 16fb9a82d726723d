"""The explainer lives in ``tomato.explain`` (layer 0: the runtime calls it too)."""

from tomato.explain import *  # noqa: F403
from tomato.explain import MODES, REPORTING, SEP, NullExplainer, _noop, for_mode  # noqa: F401

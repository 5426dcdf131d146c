"""Which of the files ``mace_run_train`` writes is the trained model.

With Stage Two (on by default for MACEQEq) mace saves the best Stage One model
as ``NAME.model`` and the final one as ``NAME_stagetwo.model`` (each with a
``_compiled`` TorchScript twin); the Stage Two model is the one to use.
"""

from pathlib import Path
from typing import Union


def trained_model_path(model_dir: Union[str, Path], name: str, compiled: bool = False) -> Path:
    """``model_dir/NAME_stagetwo[_compiled].model`` if Stage Two ran, else ``model_dir/NAME[_compiled].model``."""
    suffix = "_compiled.model" if compiled else ".model"
    stage_two = Path(model_dir) / f"{name}_stagetwo{suffix}"
    return stage_two if stage_two.exists() else Path(model_dir) / f"{name}{suffix}"

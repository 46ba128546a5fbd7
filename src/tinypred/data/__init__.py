"""Data: synthetic scenes, the agent-frame encoding, dataset files and export formats.

Owns everything about a scene before a predictor sees it: the generator's vocabulary and config
(`scene_config`), its motion primitives (`paths`), its single-agent families (`families`), its
interactive families (`interactive`, on the traffic models of `traffic`), one family's simulated batch
(`drawn`), world-frame scenes (`scenes`), draws from each scene's true conditional law for the bayes
floor (`truth`), the encoded agent-frame scene and the model's feature vector (`encoding`), how a synthetic
dataset is made a block at a time (`synthetic`), dataset directories on disk (`dataset`) and prediction
files for other tools (`export`). Every array of scenes
carries its time step `dt`. May import only the shared utilities (errors, fileio, geometry, config).
"""

from tinypred.data.dataset import SPLITS, Dataset, load, make, save, write
from tinypred.data.encoding import EncodedScenes, Normalizer, encode, features, to_agent, to_world
from tinypred.data.scene_config import (
    DECISION_FAMILIES,
    FAMILIES,
    INTENTS,
    INTERACTIVE_FAMILIES,
    LANE_TYPES,
    SceneConfig,
)
from tinypred.data.scenes import SceneArrays, Scenes, generate

__all__ = [
    "DECISION_FAMILIES",
    "FAMILIES",
    "INTENTS",
    "INTERACTIVE_FAMILIES",
    "LANE_TYPES",
    "SPLITS",
    "Dataset",
    "EncodedScenes",
    "Normalizer",
    "SceneArrays",
    "SceneConfig",
    "Scenes",
    "encode",
    "features",
    "generate",
    "load",
    "make",
    "save",
    "to_agent",
    "to_world",
    "write",
]

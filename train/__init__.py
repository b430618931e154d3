"""Decoder training and the paper's quality measures (needs torch)."""

from adainrt.train.evaluate import Scores, score_pairs
from adainrt.train.trainer import TrainConfig, Trainer

__all__ = ["Scores", "TrainConfig", "Trainer", "score_pairs"]

"""Policies on frozen features (docs/design.md sections 2 and 9): MVP's actor, feature providers,
the aggregated buffer, DAgger and behaviour cloning, PPO, demo files, success statistics and curves.

    from policies import Actor, DaggerConfig, StateFeatures, TotoFeatures, train_dagger
    actor, stats = train_dagger(env, TotoFeatures(encoder), expert, DaggerConfig(rounds=5), out_dir="runs/dagger")

This package never imports sim or real: envs arrive as gymnasium envs, experts as callables.
"""
from policies.actor import Actor
from policies.buffer import AggregatedBuffer
from policies.dagger import DaggerConfig, evaluate, rollout, train_actor, train_dagger
from policies.demos import demo_buffer
from policies.features import FeatureProvider, RandomTotoFeatures, StateFeatures, TotoFeatures, random_encoder

__all__ = ["Actor", "AggregatedBuffer", "DaggerConfig", "FeatureProvider", "RandomTotoFeatures", "StateFeatures",
           "TotoFeatures", "demo_buffer", "evaluate", "random_encoder", "rollout", "train_actor", "train_dagger"]

"""Policies on frozen features (docs/design.md sections 2 and 6): the one policy object (`Policy`,
`PolicyConfig`, `EncoderSpec`), MVP's actor, feature providers, the aggregated buffer, its
trainers (DAgger and BC here, `policies.bc` for BC from recorded episodes, `policies.ppo`), demo
files, success statistics and curves.

    from policies import DaggerConfig, Policy, make_features, train_dagger
    policy, stats = train_dagger(env, make_features(spec), expert, DaggerConfig(rounds=5), out_dir="runs/dagger")
    Policy.from_pretrained("runs/dagger").select_action(observation)

This package never imports sim or real: envs arrive as gymnasium envs, experts as callables.
"""
from policies.actor import Actor
from policies.buffer import AggregatedBuffer
from policies.configuration import EncoderSpec, PolicyConfig
from policies.dagger import DaggerConfig, evaluate, rollout, train_actor, train_dagger
from policies.demos import demo_buffer
from policies.features import FeatureProvider, RandomTotoFeatures, StateFeatures, TotoFeatures, make_features, random_encoder
from policies.policy import Policy

__all__ = ["Actor", "AggregatedBuffer", "DaggerConfig", "EncoderSpec", "FeatureProvider", "Policy", "PolicyConfig",
           "RandomTotoFeatures", "StateFeatures", "TotoFeatures", "demo_buffer", "evaluate", "make_features", "random_encoder",
           "rollout", "train_actor", "train_dagger"]

"""TensorBoard the way people read it: the training statistics under train/, the evaluations under eval/, the
sample grids under train/samples, and the run's hyper-parameters with its final scores in the HPARAMS view."""

import pytest

from ganforge import TrainConfig, train

event_accumulator = pytest.importorskip(
    "tensorboard.backend.event_processing.event_accumulator", reason="needs tensorboard: pip install -e '.[dev]'"
)


def test_scalars_are_grouped_and_the_run_is_in_the_hparams_view(mnist_root, tmp_path):
    config = TrainConfig(
        model="mlp", data_root=str(mnist_root), steps=4, batch_size=16, log_every=2, eval_every="2",
        eval_samples=32, sample_every="2", tensorboard=True, progress=False, out=str(tmp_path / "run"), threads=1,
    )  # fmt: skip
    train(config)
    events = event_accumulator.EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    assert {"train/d_loss", "train/g_loss", "train/images_per_sec", "eval/fid"} <= scalars
    assert not [tag for tag in scalars if "/" not in tag], "every scalar under train/ or eval/"
    assert "train/samples" in events.Tags()["images"]
    hparams = events.PluginTagToContent("hparams")
    assert hparams, "no HPARAMS summary"
    from tensorboard.plugins.hparams import plugin_data_pb2

    start = next(
        plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info
        for content in hparams.values()
        if plugin_data_pb2.HParamsPluginData.FromString(content).HasField("session_start_info")
    )
    assert start.hparams["model"].string_value == "mlp" and start.hparams["batch_size"].number_value == 16
    assert "out" not in start.hparams and "log_every" not in start.hparams  # where and how often: not learning
    experiment = next(
        plugin_data_pb2.HParamsPluginData.FromString(content).experiment
        for content in hparams.values()
        if plugin_data_pb2.HParamsPluginData.FromString(content).HasField("experiment")
    )
    assert "final/fid" in {info.name.tag for info in experiment.metric_infos}

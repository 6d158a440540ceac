"""Task parameters (``--task-param TASK.PARAM=VALUE``): declared by the task's spec, checked before any
work, part of the case's node id, folder and task signature; they replace the environment variables
the live task used to read."""

from __future__ import annotations

import pytest

import deploybench.plugins as plugins
from deploybench.collection import collect
from deploybench.task import TaskParam


@pytest.fixture
def pm():
    return plugins.create_plugin_manager()


def test_a_live_task_parameter_makes_its_own_case_label_node_id_and_signature(pm):
    plain, = collect(pm, tasks=["edge_tight[live]"], optimizers=["random"])
    edge, = collect(pm, tasks=["edge_tight[live]"], optimizers=["random"],
                    task_params={"edge_tight": {"device_profile": "edge", "models": "mobilenet_v2,resnet18"}})
    assert plain.task_params == () and plain.task_label == "edge_tight@live"
    assert edge.task_params == (("device_profile", "edge"), ("models", ("mobilenet_v2", "resnet18")))
    assert edge.task_label == "edge_tight@live[device_profile=edge,models=mobilenet_v2+resnet18]"
    assert edge.node_id == "edge_tight[live][device_profile=edge,models=mobilenet_v2+resnet18]::random[seed=0]"
    spec = pm.get_task_spec("edge_tight")
    built, default = spec.build("live", dict(edge.task_params)), spec.build("live")
    assert built.device_profile.name == "edge" and built.device_profile.memory_mb == 1024.0
    assert built.space["model"].choices == ("mobilenet_v2", "resnet18")
    assert built.signature() != default.signature()  # a case recorded under the other value refuses --resume
    # a value equal to the default is the plain task, not a variant
    same, = collect(pm, tasks=["edge_tight[live]"], optimizers=["random"],
                    task_params={"edge_tight": {"device_profile": "host"}})
    assert same.task_params == () and same.node_id == plain.node_id


@pytest.mark.parametrize("params, message", [
    ({"device_profil": "edge"}, "unknown parameter 'device_profil' of task 'edge_tight'.*did you mean 'device_profile'"),
    ({"device_profile": "egde"}, "device_profile='egde' is not allowed; did you mean 'edge'.*allowed: host, cpu, edge"),
    ({"models": "resnet18,vit_b16"}, "'vit_b16' is not allowed; did you mean 'vit_b_16'.*a comma list of resnet18"),
    ({"device": "tpu"}, "device='tpu' is not allowed.*allowed: auto, cpu, cuda"),
])
def test_bad_task_parameters_are_usage_errors_naming_what_is_allowed(pm, params, message):
    with pytest.raises(plugins.UsageError, match=message):
        collect(pm, tasks=["edge_tight[live]"], optimizers=["random"], task_params={"edge_tight": params})


def test_task_parameters_apply_only_where_they_mean_something(pm):
    with pytest.raises(plugins.UsageError, match="apply to target 'live' only; target 'edge' replays a recorded table"):
        collect(pm, tasks=["edge_tight[edge]"], optimizers=["random"],
                task_params={"edge_tight": {"device_profile": "edge"}})
    with pytest.raises(plugins.UsageError, match="task 'crashy_branin' takes no parameters"):
        collect(pm, tasks=["crashy_branin"], optimizers=["random"], task_params={"crashy_branin": {"x": "1"}})
    with pytest.raises(plugins.UsageError, match="names task 'edge_wide', which is not selected; selected: edge_tight"):
        collect(pm, tasks=["edge_tight[live]"], optimizers=["random"], task_params={"edge_wide": {"device": "cpu"}})


def test_a_task_parameter_reads_command_line_text_in_its_declared_type():
    assert TaskParam("n", 1, "a count", kind=int).read("3") == 3
    assert TaskParam("m", None, "models", choices=("a", "b"), kind="csv").read("b, a") == ("b", "a")
    with pytest.raises(ValueError, match="n='three': expected int"):
        TaskParam("n", 1, "a count", kind=int).read("three")


def test_the_command_line_sets_task_parameters_and_list_shows_them(cli, tmp_path):
    done = cli("run", "-t", "edge_tight[live]", "-o", "random", "--task-param", "edge_tight.device_profile=edge",
               "--collect-only")
    assert done.returncode == 0, done.stderr
    assert "edge_tight[live][device_profile=edge]::random[seed=0]" in done.stdout
    bad = cli("run", "-t", "edge_tight[live]", "-o", "random", "--task-param", "device_profile=edge", "--collect-only")
    assert bad.returncode == 2 and "--task-param takes TASK.PARAM=VALUE" in bad.stderr
    listed = cli("list")
    assert "edge_tight" in listed.stdout and "device_profile (host)" in listed.stdout


def test_every_public_name_of_the_package_resolves():
    import deploybench

    for name in deploybench.__all__:
        assert getattr(deploybench, name) is not None, name  # a lazily exported name whose module moved fails here

"""The engine's default XLA flags: appended to XLA_FLAGS at import, never over a user's flag, once,
with an opt-out; and a fresh interpreter that has them runs JAX on CPU (XLA accepts every name)."""

import importlib
import os
import subprocess
import sys

import aigc_jax
from aigc_jax.engine import xla_flags
from aigc_jax.engine.xla_flags import GPU_DEFAULTS, OPT_OUT_ENV, apply_default_xla_flags, parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Every default on this jaxlib: the GPU flags, and the CPU flags measured on this jaxlib's version.
DEFAULTS = parse(" ".join(xla_flags.default_xla_flags({})))


def names_count(xla_flags_value: str, name: str) -> int:
    return sum(token.lstrip("-").partition("=")[0] == name for token in xla_flags_value.split())


def test_parse_reads_names_values_and_bare_flags():
    assert parse(" --a=1  --b -c=x=y --a=2") == {"a": "2", "b": None, "c": "x=y"}
    assert parse("") == {}


def test_defaults_are_appended_after_the_users_flags():
    env = {"XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
    added = apply_default_xla_flags(env)
    assert env["XLA_FLAGS"].startswith("--xla_force_host_platform_device_count=4 ")
    assert set(parse(env["XLA_FLAGS"])) == {"xla_force_host_platform_device_count", *DEFAULTS}
    assert len(added) == len(DEFAULTS) and set(GPU_DEFAULTS) <= set(DEFAULTS)


def test_a_flag_the_user_set_wins():
    env = {"XLA_FLAGS": "--xla_gpu_enable_triton_gemm=true --xla_gpu_enable_latency_hiding_scheduler"}
    added = apply_default_xla_flags(env)
    flags = parse(env["XLA_FLAGS"])
    assert flags["xla_gpu_enable_triton_gemm"] == "true"
    assert flags["xla_gpu_enable_latency_hiding_scheduler"] is None  # bare, as the user wrote it
    assert names_count(env["XLA_FLAGS"], "xla_gpu_enable_triton_gemm") == 1
    assert not any("triton_gemm" in f or "latency_hiding" in f for f in added)
    assert len(added) == len(DEFAULTS) - 2


def test_opt_out_leaves_xla_flags_alone():
    for off in ("0", "false", "OFF", "no"):
        env = {OPT_OUT_ENV: off, "XLA_FLAGS": "--xla_dump_to=/tmp/x"}
        assert apply_default_xla_flags(env) == []
        assert env["XLA_FLAGS"] == "--xla_dump_to=/tmp/x"
    env = {OPT_OUT_ENV: "0"}
    apply_default_xla_flags(env)
    assert "XLA_FLAGS" not in env


def test_applying_twice_or_reimporting_appends_nothing_more():
    env = {}
    first = apply_default_xla_flags(env)
    value = env["XLA_FLAGS"]
    assert first and apply_default_xla_flags(env) == [] and env["XLA_FLAGS"] == value
    # This process: aigc_jax already applied them at import; importing it again adds nothing.
    before = os.environ.get("XLA_FLAGS", "")
    importlib.reload(aigc_jax)
    assert os.environ.get("XLA_FLAGS", "") == before
    for name in DEFAULTS:
        assert names_count(before, name) == 1, name


def test_cpu_defaults_are_applied_like_the_gpu_ones(monkeypatch):
    monkeypatch.setattr(xla_flags, "CPU_DEFAULTS", {"xla_cpu_enable_fast_math": "false"})
    monkeypatch.setattr(xla_flags, "_jaxlib_version", lambda: "0.10.2")
    env = {}
    apply_default_xla_flags(env)
    assert parse(env["XLA_FLAGS"])["xla_cpu_enable_fast_math"] == "false"


def test_cpu_defaults_are_left_out_on_a_jaxlib_they_were_not_measured_on(monkeypatch):
    # An experimental flag a later jaxlib renamed would make XLA abort on the unknown name.
    monkeypatch.setattr(xla_flags, "_jaxlib_version", lambda: "0.11.0")
    assert not any(flag.startswith("--xla_cpu_") for flag in xla_flags.default_xla_flags({}))


def test_in_effect_reports_added_and_overridden_defaults():
    report = xla_flags.xla_flags_in_effect({"XLA_FLAGS": "--xla_gpu_enable_triton_gemm=true"})
    assert report["user_values"] == {"xla_gpu_enable_triton_gemm": "true"}
    assert report["defaults_enabled"] and report["flags"] == {"xla_gpu_enable_triton_gemm": "true"}
    # This process imported aigc_jax before any JAX computation (conftest does), so XLA read them.
    mine = xla_flags.xla_flags_in_effect()
    assert mine["too_late"] is False
    assert all(flag in os.environ["XLA_FLAGS"] for flag in mine["defaults_added"])


def run_fresh(code: str, **env_changes) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", OPT_OUT_ENV)}
    env.update(env_changes)
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


JIT_ON_CPU = """
import os, aigc_jax, jax, jax.numpy as jnp
y = jax.jit(lambda x: (x @ x.T).sum())(jnp.ones((8, 4)))
print(float(y), jax.default_backend(), jax.device_count())
print(os.environ["XLA_FLAGS"])
"""


def test_fresh_interpreter_with_the_flags_runs_a_jitted_function_on_cpu():
    # The user's flag comes first and must survive; the defaults are appended once.
    out = run_fresh(JIT_ON_CPU, XLA_FLAGS="--xla_force_host_platform_device_count=2", JAX_PLATFORMS="cpu")
    assert out.returncode == 0, out.stderr[-2000:]
    result, flags = out.stdout.strip().splitlines()
    assert result == "256.0 cpu 2"  # 8 x 8 entries of 4
    assert parse(flags) == {"xla_force_host_platform_device_count": "2", **DEFAULTS}
    assert all(names_count(flags, name) == 1 for name in DEFAULTS)


def test_xla_rejects_an_unknown_flag_so_the_run_above_checks_every_name():
    # The control: were a default's name unknown to this jaxlib, XLA would abort like this.
    out = run_fresh(JIT_ON_CPU, XLA_FLAGS="--xla_gpu_no_such_flag_here=true", JAX_PLATFORMS="cpu")
    assert out.returncode != 0
    assert "xla_gpu_no_such_flag_here" in out.stderr


def test_fresh_interpreter_opted_out_has_no_defaults():
    out = run_fresh(JIT_ON_CPU, XLA_FLAGS="--xla_force_host_platform_device_count=1", JAX_PLATFORMS="cpu",
                    **{OPT_OUT_ENV: "0"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[1] == "--xla_force_host_platform_device_count=1"

"""Bad values fail at `helm template` time with a sentence that names the value and the fix."""

from __future__ import annotations

import re
from typing import Any

import pytest

from scripts import chart
from tests.chart import cases

pytestmark = pytest.mark.chart

T4 = (cases.ENV_VALUES_DIR / "aws-t4.yaml",)
CPU = (cases.ENV_VALUES_DIR / "local-cpu.yaml",)


def _fails(files: tuple[Any, ...], values: dict[str, Any]) -> str:
    with pytest.raises(chart.ChartError) as caught:
        cases.render_with(files, values)
    return str(caught.value)


def _vllm(**block: Any) -> dict[str, Any]:
    return {"vllm-llama": block}


def test_a_typo_in_a_vllm_key_is_rejected_and_named() -> None:
    message = _fails(T4, _vllm(vllm={"maxModelLenght": 4096}))
    assert "at '/vllm': additional properties 'maxModelLenght' not allowed" in message
    assert "fix: 'maxModelLenght' is not a value the chart knows there (a typo?)" in message


def test_a_typo_in_a_top_level_umbrella_key_is_rejected_and_named() -> None:
    message = _fails(T4, {"vllm-lama": {"enabled": True}})
    assert "vllm-lama" in message and "not allowed" in message


def test_a_typo_in_a_global_key_is_rejected_and_named() -> None:
    message = _fails(T4, {"global": {"model": {"servedname": "x"}}})
    assert "servedname" in message


def test_a_wrong_type_names_the_key_and_the_expected_type() -> None:
    message = _fails(T4, _vllm(vllm={"maxModelLen": "8k"}))
    assert "at '/vllm/maxModelLen': got string, want integer" in message
    assert "fix: give a value of type integer there, not a string" in message


def test_an_unknown_gpu_profile_lists_the_allowed_ones() -> None:
    message = _fails(T4, _vllm(gpu={"profile": "v100"}))
    assert "/gpu/profile" in message and "t4" in message


def test_bf16_on_a_t4_fails_and_says_use_half() -> None:
    message = _fails(T4, _vllm(vllm={"dtype": "bfloat16"}))
    assert "vllm-llama.vllm.dtype bfloat16 is not supported on a T4" in message
    assert "set vllm-llama.vllm.dtype: half" in message


@pytest.mark.parametrize("kv_dtype", ["fp8", "fp8_e5m2"])
def test_fp8_kv_cache_on_a_t4_fails_and_says_use_auto(kv_dtype: str) -> None:
    message = _fails(T4, _vllm(vllm={"kvCacheDtype": kv_dtype}))
    assert f"vllm-llama.vllm.kvCacheDtype {kv_dtype} is not supported on a T4" in message
    assert "kvCacheDtype: auto" in message


def test_a_gpu_request_without_gpu_tolerations_fails_and_names_the_toleration() -> None:
    message = _fails(T4, {"global": {"gpu": {"tolerations": []}}})
    assert "no GPU tolerations" in message and "global.gpu.tolerations" in message


def test_a_context_longer_than_the_t4_kv_cache_fails_and_gives_the_largest_that_fits() -> None:
    message = _fails(T4, _vllm(vllm={"maxModelLen": 131072}))
    assert "vllm-llama.vllm.maxModelLen 131072 needs 14.00 GiB of KV cache" in message
    largest = int(re.search(r"at most (\d+)", message).group(1))
    # Llama-3.2-3B's KV cache is 2 x 28 layers x 8 KV heads x 128 x 2 bytes = 112 KiB a token (its
    # config.json on the Hugging Face hub); about 5-6 GiB of a T4 remain at 0.90: 45-55k tokens.
    assert 40_000 < largest < 60_000, "roughly 45-55k tokens fit on a T4 at 0.90"
    cases.render_with(T4, _vllm(vllm={"maxModelLen": largest}))


def test_a_rolling_update_on_a_one_gpu_profile_fails_and_says_recreate() -> None:
    message = _fails(T4, _vllm(strategy={"type": "RollingUpdate"}))
    assert "vllm-llama.strategy.type RollingUpdate" in message and "strategy.type: Recreate" in message


def test_tensor_parallel_size_must_match_the_gpu_count() -> None:
    message = _fails(T4, _vllm(vllm={"tensorParallelSize": 2}))
    assert "vllm-llama.vllm.tensorParallelSize (2) must equal vllm-llama.gpu.count (1)" in message


def test_a_gpu_profile_without_a_gpu_fails() -> None:
    assert "vllm-llama.gpu.count is 0" in _fails(T4, _vllm(gpu={"count": 0}))


def test_the_cpu_profile_with_a_gpu_or_the_cuda_image_fails() -> None:
    assert "set vllm-llama.gpu.count: 0" in _fails(CPU, _vllm(gpu={"count": 1}))
    message = _fails(CPU, _vllm(image={"repository": "docker.io/vllm/vllm-openai", "tag": "v0.32.0"}))
    assert "vllm-llama.image.repository: docker.io/vllm/vllm-openai-cpu" in message


def test_the_cuda_profile_with_the_cpu_image_fails() -> None:
    message = _fails(T4, _vllm(image={"repository": "docker.io/vllm/vllm-openai-cpu"}))
    assert "is a CPU build" in message


def test_an_image_floating_on_latest_fails() -> None:
    message = _fails(T4, _vllm(image={"tag": "latest"}))
    assert "vllm-llama.image.tag must pin a vLLM release" in message


def test_gpus_set_in_resources_instead_of_gpu_count_fails() -> None:
    message = _fails(T4, _vllm(resources={"limits": {"nvidia.com/gpu": 2}}))
    assert "set vllm-llama.gpu.count instead" in message


def test_a_missing_token_source_fails_and_lists_the_three_ways() -> None:
    message = _fails(T4, _vllm(hfToken={"existingSecret": ""}))
    assert "vllm-llama.hfToken.existingSecret" in message and "--set-file" in message


def test_baked_weights_with_the_upstream_image_fails() -> None:
    message = _fails(T4, _vllm(model={"source": "image"}))
    assert "services/vllm-llama" in message


def test_weights_that_do_not_fit_the_gpu_fail() -> None:
    message = _fails(T4, _vllm(model={"architecture": {"paramsBillions": 8.0}}))
    assert "do not fit the T4" in message


def test_autoscaling_to_zero_is_refused_by_the_schema() -> None:
    message = _fails(T4, _vllm(autoscaling={"enabled": True, "minReplicas": 0}))
    assert "/autoscaling/minReplicas" in message


def test_too_few_batched_tokens_for_the_sequences_fails() -> None:
    message = _fails(T4, _vllm(vllm={"maxNumBatchedTokens": 16, "maxNumSeqs": 32}))
    assert "vllm-llama.vllm.maxNumBatchedTokens (16) is below vllm-llama.vllm.maxNumSeqs (32)" in message


def test_a_vllm_memory_limit_beyond_the_gpu_nodes_allocatable_fails_with_the_largest_that_fits() -> None:
    # g4dn.xlarge: 15700 MiB capacity - 1324 MiB the kubelet reserves = 14376 allocatable, less
    # 768 MiB for the node agents: 13608 MiB. values/aws-t4.yaml's 13Gi (13312 MiB) fits.
    message = _fails(T4, _vllm(resources={"limits": {"memory": "14Gi"}}))
    assert "vllm-llama.resources.limits.memory (14336 MiB) does not fit the T4 node" in message
    assert "14376 MiB allocatable" in message
    assert "set vllm-llama.resources.limits.memory to at most 13608Mi" in message
    cases.render_with(T4, _vllm(resources={"limits": {"memory": "13608Mi"}}))
    # Decimal units count too: 15 G is 14306 MiB.
    assert "(14306 MiB)" in _fails(T4, _vllm(resources={"limits": {"memory": "15G"}}))

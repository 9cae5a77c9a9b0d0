import subprocess
import sys

import tokenhub_core
from tokenhub_core import errors


def test_exported_names_are_what_we_mean() -> None:
    assert set(tokenhub_core.__all__) == {
        "DEFAULT_BASE_URL",
        "DEFAULT_MODEL",
        "MODELS",
        "APIConnectionError",
        "APIResponseError",
        "APIStatusError",
        "APITimeoutError",
        "AsyncChatStream",
        "AuthenticationError",
        "BadRequestError",
        "BudgetExceededError",
        "ChatCompletion",
        "ChatCompletionChunk",
        "ChatStream",
        "CostMeter",
        "IncompleteToolCallError",
        "InternalServerError",
        "InvalidParameterError",
        "MissingAPIKeyError",
        "ModelInfo",
        "NotFoundError",
        "PaymentRequiredError",
        "PermissionDeniedError",
        "RateLimitError",
        "StreamInterruptedError",
        "TokenHubClient",
        "TokenHubError",
        "UnknownParameterError",
        "Usage",
        "__version__",
        "cost_usd",
        "price_call",
        "price_usage",
        "set_cache_pricing",
        "resolve_model",
        "track_cost",
    }
    for name in tokenhub_core.__all__:
        assert getattr(tokenhub_core, name) is not None
    for name in errors.__all__:
        assert hasattr(errors, name)


def test_importing_the_core_imports_no_framework_and_no_emulator() -> None:
    code = (
        "import sys, tokenhub_core, tokenhub_core.client, tokenhub_core.cost;"
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "('langchain_core', 'llama_index', 'starlette', 'uvicorn', 'openai') "
        "or m.startswith('tokenhub_emulator')];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr

"""Facts the configuration and the components share, each defined once.

The policy pack runs in its own environment and keeps its own copies of the few it needs
(`policy/policies/_util.py`: the secret-looking words); a test holds the two equal.
"""

from __future__ import annotations

import re

# The CPU architectures the service, its image and its CodeBuild jobs run on, by their ECS names,
# with the Docker platform each builds for.
PLATFORMS = {"ARM64": "linux/arm64", "X86_64": "linux/amd64"}
ARCHITECTURES = tuple(PLATFORMS)

# Fargate task sizes, exactly as AWS documents them (Linux): CPU units -> allowed memory in MiB.
FARGATE_MEMORY = {
    256: (512, 1024, 2048),
    512: tuple(range(1024, 4096 + 1, 1024)),
    1024: tuple(range(2048, 8192 + 1, 1024)),
    2048: tuple(range(4096, 16384 + 1, 1024)),
    4096: tuple(range(8192, 30720 + 1, 1024)),
    8192: tuple(range(16384, 61440 + 1, 4096)),
    16384: tuple(range(32768, 122880 + 1, 8192)),
}

# KMS actions, by what a principal does with a key.
KMS_USE = (
    "kms:Decrypt",
    "kms:DescribeKey",
    "kms:Encrypt",
    "kms:GenerateDataKey",
    "kms:GenerateDataKeyWithoutPlaintext",
    "kms:ReEncryptFrom",
    "kms:ReEncryptTo",
)  # everything but administration: the account's own use, and services that encrypt for it
KMS_READ_WRITE = ("kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey")  # a job's artifacts
KMS_PUBLISH = ("kms:Decrypt", "kms:GenerateDataKey")  # publishing to an encrypted topic

# Variables the program sets in the app container itself; config may not set them.
PROGRAM_VARIABLES = (
    "AWS_XRAY_DAEMON_ADDRESS",
    "LISTEN_BACKLOG",
    "PORT",
    "SERVICE_NAME",
    "WORKER_THREADS",
    "XRAY_SAMPLING_RATE",
)


# Words that make a variable name look like it holds a secret, by its `_`- or camelCase-separated words:
# one of SECRET_WORDS anywhere, or KEY alone or after one of KEY_QUALIFIERS. So API_KEY, apiKey,
# DB_PASSWORD and KEY look secret; KEYCLOAK_URL, MONKEY_MODE and SONAR_PROJECT_KEY do not.
SECRET_WORDS = ("PASSWORD", "PASSWD", "PASS", "PASSPHRASE", "SECRET", "TOKEN", "CREDENTIAL", "CREDENTIALS",
                "PRIVATE", "APIKEY")  # fmt: skip
KEY_QUALIFIERS = ("API", "ACCESS", "PRIVATE", "SECRET", "SIGNING", "ENCRYPTION", "MASTER", "LICENSE", "CLIENT")


def secret_word(name: str) -> str | None:
    """The secret-looking word of a variable name, or None (`DB_PASSWORD` -> PASSWORD, `API_KEY` -> API_KEY)."""
    words = [w.upper() for w in re.split(r"[^A-Za-z0-9]+|(?<=[a-z0-9])(?=[A-Z])", name) if w]
    for i, word in enumerate(words):
        if word in SECRET_WORDS:
            return word
        if word == "KEY" and (len(words) == 1 or (i > 0 and words[i - 1] in KEY_QUALIFIERS)):
            return "_".join(words[max(0, i - 1) : i + 1])
    return None

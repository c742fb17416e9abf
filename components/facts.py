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


# Whether a variable name looks like it holds a secret. Secure by default: these fragments anywhere
# (DBPASSWORD, GITHUBTOKEN, CLIENT_SECRETS), the word PASS, and KEY as a word (SESSION_KEY, API_KEY,
# apiKey, HMACKEY) unless the word before it makes it a plain identifier (SONAR_PROJECT_KEY,
# CACHE_KEY). KEYCLOAK_URL and MONKEY_MODE stay plain.
SECRET_FRAGMENTS = (
    "PASSWORD",
    "PASSWD",
    "PASSPHRASE",
    "SECRET",
    "TOKEN",
    "CREDENTIAL",
    "PRIVATE",
    "APIKEY",
    "ACCESSKEY",
)
PLAIN_KEY_QUALIFIERS = ("PROJECT", "CACHE", "PARTITION", "SORT", "PRIMARY", "FOREIGN", "OBJECT", "BUCKET", "ROUTING",
                        "IDEMPOTENCY", "LOOKUP", "GROUP", "DEDUPLICATION", "S3")  # fmt: skip
KEY_WORDS = ("HMACKEY", "SESSIONKEY", "SIGNINGKEY", "ENCRYPTIONKEY", "MASTERKEY", "LICENSEKEY", "CLIENTKEY")


def secret_word(name: str) -> str | None:
    """What makes a variable name look secret, or None (`DB_PASSWORD` -> PASSWORD, `HMAC_KEY` -> KEY)."""
    upper = name.upper()
    fragment = next((f for f in SECRET_FRAGMENTS if f in upper), None)
    if fragment:
        return fragment
    words = [w.upper() for w in re.split(r"[^A-Za-z0-9]+|(?<=[a-z0-9])(?=[A-Z])", name) if w]
    for i, word in enumerate(words):
        if word == "PASS" or word in KEY_WORDS:
            return word
        if word == "KEY" and (i == 0 or words[i - 1] not in PLAIN_KEY_QUALIFIERS):
            return "KEY"
    return None


# The X-Ray daemon sidecar listens here (UDP, and TCP for its proxy) in the task's network namespace,
# which every container of an awsvpc task shares: the service cannot use it.
XRAY_DAEMON_PORT = 2000

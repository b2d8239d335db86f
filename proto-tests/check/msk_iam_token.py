"""The MSK IAM SASL token AWS's own signer (aws-msk-iam-sasl-signer-python) makes for given credentials, region
and signing time, for proto-tests/kafka_iam.rs to compare ticklake's with, byte for byte.

    msk_iam_token.py --region R --access-key A --secret-key S [--session-token T] --time 2026-12-06T14:00:00Z
prints the token, its expiry in milliseconds, and the signer's user agent (the token carries it), a line each."""

import argparse
import datetime
import importlib.metadata
from unittest import mock

import botocore.auth
from aws_msk_iam_sasl_signer import MSKAuthTokenProvider
from botocore.credentials import CredentialProvider, Credentials


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--region", required=True)
    ap.add_argument("--access-key", required=True)
    ap.add_argument("--secret-key", required=True)
    ap.add_argument("--session-token")
    ap.add_argument("--time", required=True)
    a = ap.parse_args()
    at = datetime.datetime.strptime(a.time, "%Y-%m-%dT%H:%M:%SZ")

    class Fixed(datetime.datetime):
        @classmethod
        def utcnow(cls):
            return at

        @classmethod
        def now(cls, tz=None):
            return at.replace(tzinfo=datetime.timezone.utc) if tz else at

    class Provider(CredentialProvider):
        def load(self):
            return Credentials(a.access_key, a.secret_key, a.session_token)

    # The signer takes its signing time from botocore's clock: fixed here, as ticklake's test fixes its own.
    with mock.patch.object(botocore.auth.datetime, "datetime", Fixed):
        token, expiry = MSKAuthTokenProvider.generate_auth_token_from_credentials_provider(a.region, Provider())
    print(token)
    print(expiry)
    print(f"{MSKAuthTokenProvider.LIB_NAME}/{importlib.metadata.version(MSKAuthTokenProvider.LIB_NAME)}")


if __name__ == "__main__":
    main()

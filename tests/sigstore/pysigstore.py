"""sigstore-python as an independent signer for wpkg's interop tests.

    python3 tests/sigstore/pysigstore.py sign-dsse --trust-config FILE --token JWT \
        --digest sha256:HEX [--name NAME] --out BUNDLE

Signs a cosign-shaped image signature (an in-toto statement whose subject is the
digest, predicate type https://sigstore.dev/cosign/sign/v1) as a DSSE envelope with
the Sigstore instance of FILE (a ClientTrustConfig: Fulcio, Rekor v1), and writes the
sigstore bundle. Needs `pip install sigstore` (bash scripts/setup.sh).
"""

import argparse
import sys

from sigstore import dsse
from sigstore.models import ClientTrustConfig
from sigstore.oidc import IdentityToken
from sigstore.sign import SigningContext


def main() -> int:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("sign-dsse")
    s.add_argument("--trust-config", required=True)
    s.add_argument("--token", required=True)
    s.add_argument("--digest", required=True)
    s.add_argument("--name", default="image")
    s.add_argument("--out", required=True)
    a = p.parse_args()

    algo, _, hexdigest = a.digest.partition(":")
    if algo != "sha256" or len(hexdigest) != 64:
        print("--digest must be sha256:<64 hex>", file=sys.stderr)
        return 2
    with open(a.trust_config) as f:
        config = ClientTrustConfig.from_json(f.read())
    ctx = SigningContext.from_trust_config(config)
    statement = (
        dsse.StatementBuilder()
        .subjects([dsse.Subject(name=a.name, digest={"sha256": hexdigest})])
        .predicate_type("https://sigstore.dev/cosign/sign/v1")
        .predicate({})
        .build()
    )
    # cache=True (the default): one ephemeral key for the CSR and the signature.
    with ctx.signer(IdentityToken(a.token)) as signer:
        bundle = signer.sign_dsse(statement)
    with open(a.out, "w") as f:
        f.write(bundle.to_json())
    return 0


if __name__ == "__main__":
    sys.exit(main())

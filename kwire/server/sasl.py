"""The server side of SASL/PLAIN (RFC 4616) and SASL/SCRAM-SHA-256/512 (RFC 5802, 7677),
as Kafka 3.9's PlainSaslServer and ScramSaslServer behave.

A mechanism server is a small state machine: `evaluate(token)` takes the client's token
and returns the challenge to send (``b""`` for none), until `complete` is true. A failure
raises one of two errors, as Kafka's servers do:

- `SaslAuthenticationError`: its message is sent to the client as it is (Kafka's
  SaslAuthenticationException);
- `SaslCredentialsError`: its message is only logged, and the client gets Kafka's generic
  "Authentication failed during authentication due to invalid credentials with SASL
  mechanism X" (Kafka's SaslException), so that it learns nothing about which users exist.

Neither server reads a clock, a socket or a file: PLAIN takes its users from the
PlainLoginModule's ``user_<name>="password"`` options, SCRAM asks a lookup function for
the stored credential (the metadata image's UserScramCredentialRecords).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from collections.abc import Callable, Mapping
from enum import Enum

from kwire.controller.scram import ScramCredential, stored_and_server_keys

__all__ = [
    "PLAIN",
    "PlainServer",
    "SaslAuthenticationError",
    "SaslCredentialsError",
    "ScramCredential",
    "ScramMechanism",
    "ScramServer",
    "MechanismServer",
]

PLAIN = "PLAIN"
SCRAM_MIN_ITERATIONS = 4096  # ScramMechanism.minIterations, for both hashes
SCRAM_NONCE_BITS = 130  # ScramFormatter.secureRandomString: 130 random bits in base 36


class SaslAuthenticationError(Exception):
    """Authentication failed; the message is for the client (SaslAuthenticationException)."""


class SaslCredentialsError(Exception):
    """Authentication failed; the message is for the log only (Kafka's SaslException)."""


class ScramMechanism(Enum):
    """Kafka's ScramMechanism: the id stored in UserScramCredentialRecord.mechanism."""

    SCRAM_SHA_256 = (1, "SCRAM-SHA-256", "sha256")
    SCRAM_SHA_512 = (2, "SCRAM-SHA-512", "sha512")

    def __init__(self, type_id: int, mechanism_name: str, hash_name: str) -> None:
        self.type_id = type_id
        self.mechanism_name = mechanism_name
        self.hash_name = hash_name

    @classmethod
    def by_name(cls, name: str) -> ScramMechanism | None:
        return next((m for m in cls if m.mechanism_name == name), None)


ScramLookup = Callable[[str, ScramMechanism], ScramCredential | None]


class MechanismServer:
    """What every mechanism server offers (Java's SaslServer, the part Kafka uses)."""

    mechanism: str
    complete: bool
    authorization_id: str

    def evaluate(self, token: bytes) -> bytes:  # pragma: no cover - interface
        raise NotImplementedError


# -- PLAIN ---------------------------------------------------------------------------------


class PlainServer(MechanismServer):
    """SASL/PLAIN against the users of a PlainLoginModule (PlainServerCallbackHandler):
    ``users`` maps a user name to its password."""

    mechanism = PLAIN

    def __init__(self, users: Mapping[str, str]) -> None:
        self.users = users
        self.complete = False
        self.authorization_id = ""

    def evaluate(self, token: bytes) -> bytes:
        # [authzid] NUL authcid NUL passwd; Java decodes malformed UTF-8 with U+FFFD.
        tokens = token.decode("utf-8", errors="replace").split("\0", 3)
        if len(tokens) != 3:
            raise SaslAuthenticationError(
                f"Invalid SASL/PLAIN response: expected 3 tokens, got {len(tokens)}"
            )
        authorization_id, username, password = tokens
        if not username:
            raise SaslAuthenticationError("Authentication failed: username not specified")
        if not password:
            raise SaslAuthenticationError("Authentication failed: password not specified")
        expected = self.users.get(username)
        if expected is None or not hmac.compare_digest(
            password.encode("utf-8"), expected.encode("utf-8")
        ):
            raise SaslAuthenticationError("Authentication failed: Invalid username or password")
        if authorization_id and authorization_id != username:
            raise SaslAuthenticationError(
                "Authentication failed: Client requested an authorization id that is "
                "different from username"
            )
        self.authorization_id = username
        self.complete = True
        return b""


# -- SCRAM ---------------------------------------------------------------------------------

# ScramMessages' grammar (RFC 5802 section 7, as Kafka's regular expressions read it).
_VALUE = r"[\x01-\x2b\x2d-\x7f]+"  # any ASCII but NUL and ','
_PRINTABLE = r"[\x21-\x2b\x2d-\x7e]+"
_SASLNAME = r"(?:[\x01-\x2b\x2d-\x3c\x3e-\x7f]|=2C|=3D)+"
_B64 = r"(?:[a-zA-Z0-9/+]{4})*(?:[a-zA-Z0-9/+]{3}=|[a-zA-Z0-9/+]{2}==)?"
_EXTENSIONS = rf"(?:,[A-Za-z]+={_VALUE})*"
CLIENT_FIRST = re.compile(
    rf"n,(?:a=(?P<authzid>{_SASLNAME}))?,(?:m={_VALUE},)?"
    rf"n=(?P<saslname>{_SASLNAME}),r=(?P<nonce>{_PRINTABLE})(?P<extensions>{_EXTENSIONS})"
)
CLIENT_FINAL = re.compile(
    rf"c=(?P<channel>{_B64}),r=(?P<nonce>{_PRINTABLE}){_EXTENSIONS},p=(?P<proof>{_B64})"
)
TOKEN_AUTH_EXTENSION = "tokenauth"


def scram_username(sasl_name: str) -> str:
    """ScramFormatter.username: '=2C' is ',' and '=3D' is '='; any other '=' is invalid."""
    name = sasl_name.replace("=2C", ",")
    if "=" in name.replace("=3D", ""):
        raise SaslCredentialsError(f"Invalid username: {sasl_name}")
    return name.replace("=3D", "=")


def _base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        number, rest = divmod(number, 36)
        out = digits[rest] + out
        if number == 0:
            return out


def _parse_extensions(text: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for item in text.split(",") if text else ():
        key, _, value = item.partition("=")
        found[key] = value
    return found


def scram_salted_password(
    mechanism: ScramMechanism, password: str, salt: bytes, iterations: int
) -> bytes:
    """RFC 5802's Hi(Normalize(password), salt, i); Kafka does not SASLprep."""
    return hashlib.pbkdf2_hmac(mechanism.hash_name, password.encode("utf-8"), salt, iterations)


def scram_credential(
    mechanism: ScramMechanism, password: str, salt: bytes, iterations: int
) -> ScramCredential:
    """The credential Kafka stores for a password (ScramFormatter.generateCredential)."""
    salted = scram_salted_password(mechanism, password, salt, iterations)
    stored_key, server_key = stored_and_server_keys(mechanism.type_id, salted)
    return ScramCredential(
        salt=salt, stored_key=stored_key, server_key=server_key, iterations=iterations
    )


class ScramServer(MechanismServer):
    """SASL/SCRAM as Kafka's ScramSaslServer: client-first, server-first, client-final,
    server-final. Channel binding is not checked, as in Kafka; delegation-token
    authentication (the ``tokenauth`` extension) finds no token, since kwire's image
    gives this layer no token store yet."""

    def __init__(
        self,
        mechanism: ScramMechanism,
        lookup: ScramLookup,
        nonce: Callable[[], str] | None = None,
    ) -> None:
        self.scram = mechanism
        self.mechanism = mechanism.mechanism_name
        self.lookup = lookup
        self.nonce = nonce or (lambda: _base36(secrets.randbits(SCRAM_NONCE_BITS)))
        self.complete = False
        self.failed = False
        self.authorization_id = ""
        self._credential: ScramCredential | None = None
        self._client_first_bare = ""
        self._server_first = ""
        self._nonce = ""

    def evaluate(self, token: bytes) -> bytes:
        if self.failed or self.complete:
            # The authenticator never gets here: it stops asking once either is reached.
            raise SaslCredentialsError("Unexpected challenge after the SCRAM exchange ended")
        try:
            if self._credential is None:
                return self._client_first(token)
            return self._client_final(token)
        except (SaslCredentialsError, SaslAuthenticationError):
            self.failed = True
            self._credential = None
            raise

    def _client_first(self, token: bytes) -> bytes:
        message = token.decode("utf-8", errors="replace")
        match = CLIENT_FIRST.fullmatch(message)
        if match is None:
            raise SaslCredentialsError(f"Invalid SCRAM client first message format: {message}")
        extensions = _parse_extensions(match["extensions"][1:])
        username = scram_username(match["saslname"])
        if extensions.get(TOKEN_AUTH_EXTENSION, "").lower() == "true":
            raise SaslCredentialsError(f"Token Authentication failed: Invalid tokenId : {username}")
        credential = self.lookup(username, self.scram)
        if credential is None:
            raise SaslCredentialsError("Authentication failed: Invalid user credentials")
        requested = match["authzid"] or ""
        if requested and requested != username:
            raise SaslAuthenticationError(
                "Authentication failed: Client requested an authorization id that is "
                "different from username"
            )
        if credential.iterations < SCRAM_MIN_ITERATIONS:
            raise SaslCredentialsError(
                f"Iterations {credential.iterations} is less than the minimum "
                f"{SCRAM_MIN_ITERATIONS} for {self.mechanism}"
            )
        self.authorization_id = username
        # Kafka rebuilds the bare message from its parts (extensions in the order sent).
        bare = f"n={match['saslname']},r={match['nonce']}"
        if extensions:
            bare += "," + ",".join(f"{k}={v}" for k, v in extensions.items())
        self._client_first_bare = bare
        self._nonce = match["nonce"] + self.nonce()
        salt = base64.b64encode(credential.salt).decode("ascii")
        self._server_first = f"r={self._nonce},s={salt},i={credential.iterations}"
        self._credential = credential
        return self._server_first.encode("ascii")

    def _client_final(self, token: bytes) -> bytes:
        credential = self._credential
        assert credential is not None
        message = token.decode("utf-8", errors="replace")
        match = CLIENT_FINAL.fullmatch(message)
        if match is None:
            raise SaslCredentialsError(f"Invalid SCRAM client final message format: {message}")
        if not match["nonce"].endswith(self._nonce):
            raise SaslCredentialsError("Invalid client nonce in the final client message.")
        try:
            channel = base64.b64decode(match["channel"], validate=True)
            proof = base64.b64decode(match["proof"], validate=True)
        except binascii.Error:
            raise SaslCredentialsError("Invalid SCRAM client final message") from None
        without_proof = f"c={base64.b64encode(channel).decode('ascii')},r={match['nonce']}"
        auth_message = f"{self._client_first_bare},{self._server_first},{without_proof}".encode()
        digest = self.scram.hash_name
        signature = hmac.digest(credential.stored_key, auth_message, digest)
        if len(proof) != len(signature):
            raise SaslCredentialsError("Invalid client credentials")
        client_key = bytes(a ^ b for a, b in zip(signature, proof, strict=True))
        if not hmac.compare_digest(hashlib.new(digest, client_key).digest(), credential.stored_key):
            raise SaslCredentialsError("Invalid client credentials")
        server_signature = hmac.digest(credential.server_key, auth_message, digest)
        self._credential = None
        self.complete = True
        return b"v=" + base64.b64encode(server_signature)

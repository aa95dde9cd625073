"""TLS for a listener (SSL and SASL_SSL) and for a controller's own connections to other
controllers: the stdlib's ssl with trio.SSLStream, configured from Kafka's ``ssl.*`` keys
in PEM form (DefaultSslEngineFactory).

- Server side: the key store gives the server's key and chain, the trust store the CAs
  that client certificates must chain to, ``ssl.client.auth`` whether one is asked for
  (none), accepted if offered (requested) or demanded (required). An SSL listener's
  principal is ``User:`` and the client certificate's subject in RFC 2253 form (Kafka's
  DEFAULT principal mapping), or User:ANONYMOUS without one.
- Client side (SslFactory in client mode, as Kafka's RaftManager builds it from the
  controller listener's keys): the same key store is the client certificate offered to a
  peer that asks for one, the trust store (else the system's CAs) checks the peer's chain,
  and ``ssl.endpoint.identification.algorithm`` (``https``, the default) checks that the
  peer's certificate names the host or IP address it was reached at.
"""

from __future__ import annotations

import os
import re
import ssl
import tempfile
from collections.abc import Sequence

from kwire.server.listener_security import SslSettings
from kwire.server.properties import ConfigError

__all__ = ["ANONYMOUS", "certificate_principal", "client_ssl_context", "server_ssl_context"]

ANONYMOUS = "User:ANONYMOUS"
_TLS_VERSIONS = {
    "TLSv1": ssl.TLSVersion.TLSv1,
    "TLSv1.1": ssl.TLSVersion.TLSv1_1,
    "TLSv1.2": ssl.TLSVersion.TLSv1_2,
    "TLSv1.3": ssl.TLSVersion.TLSv1_3,
}
_CLIENT_AUTH = {
    "none": ssl.CERT_NONE,
    "requested": ssl.CERT_OPTIONAL,
    "required": ssl.CERT_REQUIRED,
}


def server_ssl_context(settings: SslSettings) -> ssl.SSLContext:
    """The server's TLS context from a listener's PEM settings; ConfigError when a store
    cannot be loaded (a wrong key password, a file that is not PEM)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _configure(context, settings)
    context.verify_mode = _CLIENT_AUTH[settings.client_auth]
    if settings.client_auth != "none" and not _has_truststore(settings):
        context.load_default_certs(ssl.Purpose.CLIENT_AUTH)  # Java's default trust store
    return context


def client_ssl_context(settings: SslSettings) -> ssl.SSLContext:
    """A controller's TLS context towards other controllers, from its controller listener's
    PEM settings: its key store offered as client certificate, the peer's chain checked
    against the trust store (else the system's CAs), the host name checked unless
    ``ssl.endpoint.identification.algorithm`` is empty. ConfigError as server_ssl_context."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    _configure(context, settings)
    if not _has_truststore(settings):
        context.load_default_certs(ssl.Purpose.SERVER_AUTH)
    context.check_hostname = settings.endpoint_identification_algorithm == "https"
    return context


def _has_truststore(settings: SslSettings) -> bool:
    return settings.truststore_location is not None or settings.truststore_certificates is not None


def _configure(context: ssl.SSLContext, settings: SslSettings) -> None:
    """Protocol versions, the key store and the trust store (when one is given)."""
    versions = sorted(_TLS_VERSIONS[p] for p in settings.enabled_protocols)
    if versions:
        context.minimum_version, context.maximum_version = versions[0], versions[-1]
    password = settings.key_password
    if settings.keystore_location is not None:
        what = f"ssl.keystore.location={settings.keystore_location}: the PEM SSL keystore"
        _load_chain(context, settings.keystore_location, password, what)
    else:
        assert settings.keystore_key is not None and settings.keystore_certificate_chain
        pem = settings.keystore_key.strip() + "\n" + settings.keystore_certificate_chain.strip()
        # load_cert_chain reads only files: a private one, removed once read.
        fd, path = tempfile.mkstemp(prefix="kwire-keystore-", suffix=".pem")
        try:
            with os.fdopen(fd, "w") as file:
                file.write(pem + "\n")
            _load_chain(context, path, password, "ssl.keystore.key: the PEM keystore configs")
        finally:
            os.unlink(path)
    try:
        if settings.truststore_location is not None:
            context.load_verify_locations(cafile=settings.truststore_location)
        elif settings.truststore_certificates is not None:
            context.load_verify_locations(cadata=settings.truststore_certificates)
    except (ssl.SSLError, OSError, ValueError) as exc:
        key = (
            f"ssl.truststore.location={settings.truststore_location}"
            if settings.truststore_location is not None
            else "ssl.truststore.certificates"
        )
        raise ConfigError(f"{key}: invalid PEM truststore configs: {exc}") from None


def _load_chain(context: ssl.SSLContext, path: str, password: str | None, what: str) -> None:
    try:
        context.load_cert_chain(path, password=password or "")
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(f"{what} failed to load: {exc}") from None


# X509Name's RFC 2253 keywords (the ones Java's X500Principal.getName() prints by name).
_RFC2253_KEYWORDS = {
    "commonName": "CN",
    "countryName": "C",
    "localityName": "L",
    "stateOrProvinceName": "ST",
    "organizationName": "O",
    "organizationalUnitName": "OU",
    "streetAddress": "STREET",
    "domainComponent": "DC",
    "userId": "UID",
}


def _rfc2253_escape(value: str) -> str:
    value = re.sub(r'([,+"\\<>;])', r"\\\1", value)
    if value.startswith(("#", " ")):
        value = "\\" + value
    if value.endswith(" ") and len(value) > 1:
        value = value[:-1] + "\\ "
    return value


def certificate_principal(peer_certificate: dict[str, object] | None) -> str:
    """Kafka's DefaultKafkaPrincipalBuilder for TLS with the DEFAULT mapping rule:
    ``User:`` and the subject as RFC 2253 (last RDN first), or User:ANONYMOUS."""
    if not peer_certificate or not peer_certificate.get("subject"):
        return ANONYMOUS
    subject: Sequence[Sequence[tuple[str, str]]] = peer_certificate["subject"]  # type: ignore[assignment]
    rdns = [
        "+".join(f"{_RFC2253_KEYWORDS.get(k, k)}={_rfc2253_escape(v)}" for k, v in rdn)
        for rdn in subject
    ]
    return "User:" + ",".join(reversed(rdns))

"""A throw-away certificate authority for ``Emulator(tls=True)``, built with trustme.

Creates a CA, a server certificate for ``127.0.0.1``/``localhost``/``::1``, and
writes the CA certificate to a PEM file that clients can trust (``ca_file``):
by default in a private temporary directory, removed when the object is
collected or the interpreter exits; with ``cert_dir``, as
``cert_dir/emulator-ca.pem``, replaced atomically and left in place, so that a
path exported once stays valid across restarts. This module must never write a
private key to disk, never touch the system trust store, and never disable
verification.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import ssl
import tempfile
import weakref
from typing import Callable, Optional

import trustme

__all__ = ["CLIENT_NAME", "TlsMaterial"]

#: The name on client certificates issued for mutual TLS, unless another is given.
CLIENT_NAME = "client.openai-ws.test"

#: The file name of the CA certificate, in the temporary directory or in ``cert_dir``.
CA_FILE_NAME = "emulator-ca.pem"


class TlsMaterial:
    """CA + server certificate of one emulator; reused across restarts.

    With ``client_auth`` the server asks every client for a certificate and
    accepts only those issued by the same CA (:meth:`client_cert_pem`).
    """

    def __init__(self, *, client_auth: bool = False, cert_dir: Optional[str] = None) -> None:
        self.client_auth = client_auth
        self._ca = trustme.CA(organization_name="openai-ws emulator")
        self._server_cert = self._ca.issue_cert("127.0.0.1", "localhost", "::1")
        if cert_dir is None:
            self._dir = tempfile.mkdtemp(prefix="openai-ws-emulator-")
            self.ca_file = os.path.join(self._dir, CA_FILE_NAME)
            self._ca.cert_pem.write_to_path(self.ca_file)
            self._finalizer: Optional[Callable[[], object]] = weakref.finalize(
                self, shutil.rmtree, self._dir, True
            )
        else:
            self._dir = os.path.abspath(cert_dir)
            self.ca_file = os.path.join(self._dir, CA_FILE_NAME)
            self._write_stable(self.ca_file)
            self._finalizer = None  # the file stays where the user asked for it

    def _write_stable(self, path: str) -> None:
        """Replace ``path`` with this CA's certificate in one step (readers never see half)."""
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, partial = tempfile.mkstemp(prefix=".emulator-ca-", dir=os.path.dirname(path))
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(self._ca.cert_pem.bytes())
            os.chmod(partial, 0o644)  # a public certificate: any local client may read it
            os.replace(partial, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(partial)
            raise

    def server_context(self) -> ssl.SSLContext:
        """An SSL context for the listening socket."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._server_cert.configure_cert(context)
        if self.client_auth:
            context.verify_mode = ssl.CERT_REQUIRED
            self._ca.configure_trust(context)
        return context

    def client_cert_pem(self, name: str = CLIENT_NAME) -> bytes:
        """A new client certificate from this CA: private key then chain, as PEM bytes.

        Nothing is written to disk here; the caller decides where the key goes.
        """
        return self._ca.issue_cert(name).private_key_and_cert_chain_pem.bytes()

    def client_context(self) -> ssl.SSLContext:
        """A verifying client context that trusts this CA (handy in tests)."""
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        self._ca.configure_trust(context)
        return context

    def cleanup(self) -> None:
        """Delete the temporary CA file now (idempotent; a ``cert_dir`` file is kept)."""
        if self._finalizer is not None:
            self._finalizer()

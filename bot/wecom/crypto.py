"""WeCom callback crypto: msg_signature, AES-256-CBC envelopes, safe XML envelopes.

Signature and AES follow https://developer.work.weixin.qq.com/document/path/91144 ; the AES work is
wechatpy's (`wechatpy.enterprise.crypto.PrpCrypto`, 32-byte PKCS#7). Both the service (decrypt)
and the emulator (encrypt) use this module, so the two sides cannot drift apart.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from xml.etree.ElementTree import Element

from defusedxml import ElementTree as SafeET
from defusedxml.common import DefusedXmlException
from wechatpy.enterprise.crypto import PrpCrypto

from bot import errors


def signature(token: str, timestamp: str, nonce: str, encrypt: str) -> str:
    """msg_signature: SHA-1 over the four strings, sorted and concatenated."""
    return hashlib.sha1("".join(sorted([token, timestamp, nonce, encrypt])).encode()).hexdigest()


class CallbackCrypto:
    """Sign, encrypt and decrypt for one app (token, EncodingAESKey, receive id)."""

    def __init__(self, token: str, encoding_aes_key: str, receive_id: str) -> None:
        try:
            key = base64.b64decode(encoding_aes_key + "=")
        except (binascii.Error, ValueError) as exc:
            raise errors.ConfigError("EncodingAESKey is not base64") from exc
        if len(key) != 32:
            raise errors.ConfigError("EncodingAESKey must be 43 characters (32 bytes)")
        self._prp = PrpCrypto(key)  # its cipher is reusable; building one per call costs more than AES
        self._token = token
        self.receive_id = receive_id

    def check(self, msg_signature: str, timestamp: str, nonce: str, encrypt: str) -> None:
        """Raise BadSignature unless `msg_signature` matches."""
        expected = signature(self._token, timestamp, nonce, encrypt)
        if not hmac.compare_digest(expected, msg_signature or ""):
            raise errors.BadSignature()

    def decrypt(self, msg_signature: str, timestamp: str, nonce: str, encrypt: str) -> str:
        """Verify the signature, then decrypt `encrypt` to its plaintext."""
        self.check(msg_signature, timestamp, nonce, encrypt)
        try:
            plain = self._prp.decrypt(encrypt, self.receive_id)
        except Exception as exc:  # wechatpy raises many types for a corrupt payload
            raise errors.MalformedCallback("cannot decrypt the callback payload") from exc
        return plain

    def encrypt(self, plaintext: str, timestamp: str, nonce: str) -> tuple[str, str]:
        """Encrypt `plaintext`; return (encrypt, msg_signature)."""
        encrypt = self._prp.encrypt(plaintext, self.receive_id).decode()
        return encrypt, signature(self._token, timestamp, nonce, encrypt)


def parse_xml(body: bytes | str) -> dict[str, str]:
    """Parse a flat WeCom XML document into {tag: text}; refuse entities and DTDs (400)."""
    root = parse_xml_tree(body)
    return {child.tag: (child.text or "").strip() for child in root}


def parse_xml_tree(body: bytes | str) -> Element:
    """Parse untrusted XML safely and return its root element."""
    try:
        root = SafeET.fromstring(body, forbid_dtd=True)
    except (DefusedXmlException, SafeET.ParseError, ValueError) as exc:
        raise errors.MalformedCallback(f"unsafe or malformed XML: {type(exc).__name__}") from exc
    if root.tag != "xml":
        raise errors.MalformedCallback("XML root is not <xml>")
    return root


def envelope_xml(to_user: str, agent_id: str, encrypt: str) -> str:
    """The POST body WeCom sends: corp id, agent id and the encrypted payload."""
    return (
        f"<xml><ToUserName><![CDATA[{to_user}]]></ToUserName>"
        f"<AgentID><![CDATA[{agent_id}]]></AgentID>"
        f"<Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
    )


def envelope_json(encrypt: str) -> str:
    """The POST body of a smart-robot callback."""
    return json.dumps({"encrypt": encrypt})


__all__ = [
    "CallbackCrypto",
    "envelope_json",
    "envelope_xml",
    "parse_xml",
    "parse_xml_tree",
    "signature",
]

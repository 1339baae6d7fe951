"""The signed validation and approval packet: evidence, PDF, PAdES signatures, offline verification."""

from app.core.packet.evidence import PacketError, gather
from app.core.packet.sign import Signing, add_signature, build_packet
from app.core.packet.verify import (
           FAILED,
           INDETERMINATE,
           PASSED,
           PacketVerification,
           VerifyError,
           verify_packet,
)

__all__ = ["FAILED", "INDETERMINATE", "PASSED", "PacketError", "PacketVerification", "Signing", "VerifyError",
           "add_signature", "build_packet", "gather", "verify_packet"]

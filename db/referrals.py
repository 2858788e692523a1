"""Referral codes: a member's code for inviting others.

A code is random: 8 characters of Crockford's base32 (no I, L, O or U, so it
reads aloud and types without mix-ups; about 40 bits). It is given when first
asked for and never changes; a new member may name it instead of the
referrer's customer id. A code is not a secret: knowing one only lets a
sign-up name that member as its referrer.
"""

from __future__ import annotations

import secrets

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from db.errors import NotFound, ValidationError
from db.i18n import N_
from db.models import Member

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
LENGTH = 8
# what people type for what they read (Crockford's decoding rules)
_READS_AS = str.maketrans({"O": "0", "I": "1", "L": "1"})
ATTEMPTS = 8


def new_code() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))


def normalise(code: str) -> str:
    """The code as stored: upper case, without spaces or dashes, O read as 0
    and I, L as 1. Raises ValidationError if it cannot be a code."""
    clean = "".join((code or "").split()).replace("-", "").upper().translate(_READS_AS)
    if len(clean) != LENGTH or any(c not in ALPHABET for c in clean):
        raise ValidationError(
            "referral_code", N_("a referral code is %(n)s letters and digits, e.g. %(example)s",
                                 n=LENGTH, example="7K3M-9QXA"))
    return clean


def display(code: str) -> str:
    """``7K3M9QXA`` → ``7K3M-9QXA``."""
    return f"{code[:4]}-{code[4:]}"


def code_for(s: Session, member_id: int) -> str:
    """The member's referral code, given now if they have none yet (in ``s``'s
    write transaction; two callers at once get the same code)."""
    code = s.scalar(select(Member.referral_code).where(Member.id == member_id))
    if code:
        return code
    if s.scalar(select(Member.id).where(Member.id == member_id)) is None:
        raise NotFound(N_("member %(id)s does not exist", id=member_id))
    for _ in range(ATTEMPTS):
        try:
            with s.begin_nested():
                s.execute(
                    update(Member)
                    .where(Member.id == member_id, Member.referral_code.is_(None))
                    .values(referral_code=new_code())
                    .execution_options(synchronize_session=False)
                )
        except IntegrityError:  # another member has this code: draw again
            continue
        code = s.scalar(select(Member.referral_code).where(Member.id == member_id))
        if code:
            return code
    raise RuntimeError("could not find a free referral code")  # 40 bits: not in practice


def member_by_code(s: Session, code: str) -> Member | None:
    return s.scalar(select(Member).where(Member.referral_code == normalise(code)))


def link_for(template: str | None, code: str) -> str | None:
    """The shop's sign-up link for a code (REFERRAL_LINK_TEMPLATE with ``{code}``)."""
    return template.replace("{code}", code) if template else None

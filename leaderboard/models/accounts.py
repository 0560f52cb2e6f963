from __future__ import annotations

from django.conf import settings
from django.db import models


class VerifiedAddress(models.Model):
    """The e-mail address a user confirmed through a signed link; submitting needs one (staff excepted).

    `canonical` is the address as the submission quota counts it (leaderboard/verification.py): one mailbox is one
    quota, however its local part is dressed up, so it is unique across accounts.
    """

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="verified_address")
    email = models.EmailField(max_length=254)
    canonical = models.CharField(max_length=254)
    verified_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["canonical"], name="verified_address_one_account_each")]
        verbose_name_plural = "verified addresses"

    def __str__(self) -> str:
        return self.email

"""The requester's side: the client an agency (or the gateway, or an owner initiating a join for
it) uses to ask owners, one thin driver per protocol over :mod:`mpc.protocols`."""

from parties.requester.client import Client
from parties.requester.results import Eligibility, IntersectionSum, Progress, PsiResult, RemoteError, SharedLookup

__all__ = ["Client", "Eligibility", "IntersectionSum", "Progress", "PsiResult", "RemoteError", "SharedLookup"]
